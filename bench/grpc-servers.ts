// What one unary gRPC call costs the server in each way Node can serve it, without the gateway's work behind it:
// clipper.v1.PredictionService/Predict answered at once with a fixed prediction by
//   grpc-js      the shared startGrpcServer (services/shared/grpc-server.ts), as the gateway serves gRPC
//   connect      connect-node's connectNodeAdapter on a node:http2 server (h2c)
//   http2        a bare node:http2 handler that decodes the one message and answers it (the floor for Node)
// Each server is its own process; ghz drives them in turn, alternating within each round, and the table gives
// calls/s and the server's CPU time per call (from /proc).
//   node --import tsx bench/grpc-servers.ts [--rounds 3] [--duration 8] [--concurrency 64]
import { spawn } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { PredictionService } from "../gen/clipper/v1/prediction_service_pb.js";
import { binaryCodec, registration, startGrpcServer } from "../services/shared/index.js";
import { type GhzSummary, ghzArgs, runGhz } from "./loadgen/ghz.js";
import { cpuMs } from "./loadgen/processes.js";

const KINDS = ["grpc-js", "connect", "http2"] as const;
type Kind = (typeof KINDS)[number];

const prediction = { queryId: 1n, output: "0", default: false, models: ["noop:1"], confidence: 1 };
const impl = {
  async predict() {
    return { prediction };
  },
};

async function serve(kind: Kind): Promise<number> {
  switch (kind) {
    case "grpc-js": {
      // As the gateway serves it: connections injected into grpc-js from a listener that sets TCP_NODELAY.
      const grpcServer = await startGrpcServer({ port: null, services: [registration(PredictionService, impl)] });
      const injector = grpcServer.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
      const listener = net.createServer((socket) => {
        socket.setNoDelay(true);
        injector.injectConnection(socket);
      });
      return listen(listener);
    }
    case "connect": {
      const server = http2.createServer(connectNodeAdapter({ routes: (router) => router.service(PredictionService, impl) }));
      return listen(server);
    }
    case "http2": {
      const method = PredictionService.method.predict;
      const request = binaryCodec(method.input);
      const response = binaryCodec(method.output);
      const server = http2.createServer();
      server.on("stream", (stream) => {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          const body = Buffer.concat(chunks);
          const decoded = request.decode(body.subarray(5, 5 + body.readUInt32BE(1)));
          void impl.predict().then((res) => {
            if (decoded.application === "") throw new Error("no application");
            const message = response.encode(res);
            const frame = Buffer.allocUnsafe(5 + message.length);
            frame[0] = 0;
            frame.writeUInt32BE(message.length, 1);
            message.copy(frame, 5);
            stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
            stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
            stream.end(frame);
          });
        });
      });
      return listen(server);
    }
  }
}

function listen(server: net.Server): Promise<number> {
  // TCP_NODELAY, as the gateway's listener sets it on every socket it hands on.
  server.on("connection", (socket: net.Socket) => socket.setNoDelay(true));
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    }),
  );
}

function ghz(port: number, concurrency: number, durationS: number): Promise<GhzSummary> {
  const request = JSON.stringify({ application: "a", input: { doubles: { values: [1.1, 2.2, 3.3] } } });
  return runGhz(ghzArgs(`127.0.0.1:${port}`, "predict", request, concurrency), durationS);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string, fallback: number, max: number) => {
    const i = argv.indexOf(name);
    const value = i >= 0 ? Number(argv[i + 1]) : fallback;
    if (!(Number.isInteger(value) && value > 0 && value <= max)) throw new Error(`${name} must be an integer in [1, ${max}]`);
    return value;
  };
  const serveIndex = argv.indexOf("--serve");
  if (serveIndex >= 0) {
    const kind = argv[serveIndex + 1] as Kind;
    if (!KINDS.includes(kind)) throw new Error(`--serve ${KINDS.join("|")}`);
    console.log(JSON.stringify({ port: await serve(kind) }));
    return;
  }
  const rounds = flag("--rounds", 3, 20);
  const durationS = flag("--duration", 8, 120);
  const concurrency = flag("--concurrency", 64, 1024);
  const servers = await Promise.all(
    KINDS.map(
      (kind) =>
        new Promise<{ kind: Kind; port: number; pid: number; stop: () => void }>((resolve, reject) => {
          const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? "", "--serve", kind], { stdio: ["ignore", "pipe", "inherit"] });
          child.stdout?.once("data", (d: Buffer) =>
            resolve({ kind, port: (JSON.parse(d.toString()) as { port: number }).port, pid: child.pid ?? 0, stop: () => child.kill() }),
          );
          child.once("exit", (code) => reject(new Error(`${kind} server exited with ${code}`)));
        }),
    ),
  );
  try {
    console.log(`# one unary Predict per call, answered at once; ghz -c ${concurrency} --connections 4, ${durationS} s each, ${new Date().toISOString()}`);
    console.log("| round | server | calls/s | server CPU µs/call |");
    console.log("| ----- | ------ | ------- | ------------------ |");
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? servers : [...servers].reverse();
      for (const s of order) {
        const before = cpuMs(s.pid);
        const r = await ghz(s.port, concurrency, durationS);
        const perCall = ((cpuMs(s.pid) - before) * 1000) / Math.max(1, r.ok);
        console.log(`| ${round} | ${s.kind} | ${Math.round(r.rps)} | ${Math.round(perCall)} |`);
      }
    }
  } finally {
    for (const s of servers) s.stop();
  }
}

await main();
