// Per-batch cost of a model runtime over PredictStream, as the router sends batches: one at a time
// on one long-lived stream, sequential round trips from a grpc-js client, and the container's CPU
// per batch read from /proc. Start the runtime with a no-op model (bench/models/noop.py, noop.ts,
// ai.clipper.conformance.NoopModel) so only the runtime is measured:
//
//   node --import tsx test/conformance/runtime-overhead.ts [--calls 3000] [--warmup 2000] [--batches 1,64] -- <container command...>
//
// With --protocol connect (an R container: unary Predict over the Connect protocol on HTTP/1.1, what
// the router sends it) each sequential call goes on a new connection, as the router sends them.
//
// Inputs are 8 doubles each (bench/runtime_overhead.py's). Requests are written once, as bytes, so
// the client's protobuf work is not in the figures. Prints one line per batch size, and JSON with --json.
import fs from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { PredictRequestSchema, PredictStreamRequestSchema } from "../../gen/clipper/model/v1/model_service_pb.js";
import { type CheckContext, waitUntilServing } from "./checks.js";
import { ConnectModelWire } from "./connect-wire.js";
import { Container } from "./container.js";
import { pack } from "./contract.js";
import { DEFAULT_SETTINGS } from "./run.js";
import { ModelWire } from "./wire.js";

type Figures = { roundTripUs: number; serverCpuUs: number };

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime, fields 14 and 15 of the whole line; all of the process's threads.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function batchBytes(batch: number, stream: boolean): Buffer {
  const inputs = pack(
    InputType.DOUBLES,
    Array.from({ length: batch }, (_, i) => Array.from({ length: 8 }, (_, j) => i + j)),
  );
  return Buffer.from(
    stream
      ? toBinary(PredictStreamRequestSchema, create(PredictStreamRequestSchema, { batchId: 1n, inputs }))
      : toBinary(PredictRequestSchema, create(PredictRequestSchema, { batchId: 1n, inputs })),
  );
}

async function measureStream(client: grpc.Client, pid: number, batch: number, calls: number, warmup: number): Promise<Figures> {
  const call = client.makeBidiStreamRequest(
    "/clipper.model.v1.ModelService/PredictStream",
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  const request = batchBytes(batch, true);
  let answered: (() => void) | undefined;
  call.on("data", () => answered?.());
  call.on("error", () => {});
  const one = () =>
    new Promise<void>((resolve) => {
      answered = resolve;
      call.write(request);
    });
  for (let i = 0; i < warmup; i++) await one();
  const cpuBefore = cpuSeconds(pid);
  const started = performance.now();
  for (let i = 0; i < calls; i++) await one();
  const wallMs = performance.now() - started;
  const cpu = cpuSeconds(pid) - cpuBefore;
  call.end();
  return { roundTripUs: (wallMs * 1000) / calls, serverCpuUs: (cpu * 1e6) / calls };
}

async function measureUnary(client: grpc.Client, pid: number, batch: number, calls: number, warmup: number): Promise<Figures> {
  const request = batchBytes(batch, false);
  const one = () =>
    new Promise<void>((resolve, reject) =>
      client.makeUnaryRequest(
        "/clipper.model.v1.ModelService/Predict",
        (b: Buffer) => b,
        (b: Buffer) => b,
        request,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  for (let i = 0; i < warmup; i++) await one();
  const cpuBefore = cpuSeconds(pid);
  const started = performance.now();
  for (let i = 0; i < calls; i++) await one();
  const wallMs = performance.now() - started;
  return { roundTripUs: (wallMs * 1000) / calls, serverCpuUs: ((cpuSeconds(pid) - cpuBefore) * 1e6) / calls };
}

async function measureConnect(address: string, pid: number, batch: number, calls: number, warmup: number): Promise<Figures> {
  const request = batchBytes(batch, false);
  // A connection per call, as the router's replicaTransport does (why: services/shared/replica-transport.ts).
  const agent = new http.Agent({ keepAlive: false, maxSockets: 1 });
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host,
          port,
          agent,
          method: "POST",
          path: "/clipper.model.v1.ModelService/Predict",
          headers: { "content-type": "application/proto", "connect-protocol-version": "1", "content-length": request.length },
        },
        (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        },
      );
      req.on("error", reject);
      req.end(request);
    });
  try {
    for (let i = 0; i < warmup; i++) await one();
    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    for (let i = 0; i < calls; i++) await one();
    const wallMs = performance.now() - started;
    return { roundTripUs: (wallMs * 1000) / calls, serverCpuUs: ((cpuSeconds(pid) - cpuBefore) * 1e6) / calls };
  } finally {
    agent.destroy();
  }
}

/** The pid of the process that serves: the container's own, or its only child (a runner script that starts R). */
function servingPid(pid: number): number {
  try {
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    return children.length === 1 ? Number(children[0]) : pid;
  } catch {
    return pid;
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      calls: { type: "string" },
      warmup: { type: "string" },
      batches: { type: "string" },
      env: { type: "string", multiple: true },
      json: { type: "string" },
      protocol: { type: "string" },
    },
  });
  const connect = values.protocol === "connect";
  if (positionals.length === 0) throw new Error("usage: runtime-overhead.ts [--calls N] [--batches 1,64] [--env K=V] -- <container command...>");
  const calls = Number(values.calls ?? "3000");
  // Enough for a JIT (the JVM's C2, V8's TurboFan) to have compiled the hot path before measuring.
  const warmup = Number(values.warmup ?? "2000");
  const batches = (values.batches ?? "1,64").split(",").map(Number);
  const env = Object.fromEntries((values.env ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  const container = await Container.start({ command: positionals, env }, { name: "noop", version: "1", inputType: "doubles" });
  const wire = connect ? new ConnectModelWire(container.address) : new ModelWire(container.address);
  const client = new grpc.Client(container.address, grpc.credentials.createInsecure());
  const report: Record<string, Figures> = {};
  try {
    const ctx: CheckContext = { type: InputType.DOUBLES, wire, container, settings: DEFAULT_SETTINGS };
    await waitUntilServing(ctx, false);
    if (container.pid === undefined) throw new Error("no pid");
    const pid = servingPid(container.pid);
    const runtime = (await wire.metadata()).runtime;
    for (const batch of batches) {
      if (connect) {
        report[`Connect Predict batch ${batch}`] = await measureConnect(container.address, pid, batch, calls, warmup);
        continue;
      }
      report[`PredictStream batch ${batch}`] = await measureStream(client, pid, batch, calls, warmup);
      report[`unary Predict batch ${batch}`] = await measureUnary(client, pid, batch, calls, warmup);
    }
    process.stdout.write(`${runtime} (${positionals.join(" ")}), ${calls} sequential calls each:\n`);
    for (const [name, f] of Object.entries(report)) {
      process.stdout.write(
        `  ${name.padEnd(24)} round trip ${f.roundTripUs.toFixed(0).padStart(5)} µs, container CPU ${f.serverCpuUs.toFixed(0).padStart(5)} µs per batch\n`,
      );
    }
    if (values.json !== undefined) fs.writeFileSync(values.json, `${JSON.stringify({ runtime, command: positionals, calls, report }, null, 2)}\n`);
  } finally {
    client.close();
    wire.close();
    container.signal("SIGTERM");
    await Promise.race([container.exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    await container.kill();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
