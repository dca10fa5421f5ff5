// The gateway's gRPC edge against its REST edge, each driven by an independent client, alternating
// within every round so that both see the same machine (its speed moves 1.5x within minutes here):
//   node --import tsx bench/grpc-edge.ts [--rounds 3] [--duration 10] [--concurrency 64] [--clients wrk,ghz,ghz-oip,h2load,h2load-oip,python,java]
// wrk (REST, JSON body of 3 doubles), ghz (Go gRPC client; ghz-oip: OIP ModelInfer of the same input), h2load (nghttp2's C HTTP/2
// client sending the same Predict / ModelInfer as raw gRPC frames: about wrk's cost per call), python (grpcio, bench/grpc_edge_client.py),
// java (grpc-java, bench/java-client). Every client's answers are checked before timing. Per round and client:
// requests/s, p99, and the gateway's CPU time per request (from /proc). CLIPPER_CPU_PROF_DIR profiles the services.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fromJsonString, toBinary } from "@bufbuild/protobuf";
import { PredictRequestSchema } from "../gen/clipper/v1/prediction_service_pb.js";
import { ModelInferRequestSchema } from "../gen/inference/grpc_predict_v2_pb.js";
import { TestSystem } from "../test/system.js";
import { benchDir, nodeModel, systemPython } from "./deploy.js";
import { runClient } from "./loadgen/external-client.js";
import { GHZ_CALLS, ghzArgs, ghzPath, runGhz } from "./loadgen/ghz.js";
import { runH2load } from "./loadgen/h2load.js";
import { waitForQuiet } from "./loadgen/machine-load.js";
import { cpuMs } from "./loadgen/processes.js";
import { runWrk, writeWrkPostScript } from "./loadgen/wrk.js";

const CLIENTS = ["wrk", "ghz", "ghz-oip", "h2load", "h2load-oip", "python", "java"] as const;
type Client = (typeof CLIENTS)[number];

interface Options {
  rounds: number;
  durationS: number;
  concurrency: number;
  clients: Client[];
}

function parseArgs(argv: string[]): Options {
  const known = new Set(["--rounds", "--duration", "--concurrency", "--clients"]);
  for (const arg of argv) if (arg.startsWith("--") && !known.has(arg)) throw new Error(`unknown flag ${arg}; known: ${[...known].join(" ")}`);
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const bounded = (name: string, fallback: number, max: number) => {
    const text = flag(name);
    const value = text === undefined ? fallback : Number(text);
    if (!(Number.isInteger(value) && value > 0 && value <= max)) throw new Error(`${name} must be an integer in [1, ${max}], got ${text}`);
    return value;
  };
  const clients = (flag("--clients") ?? "wrk,ghz").split(",");
  for (const c of clients) if (!(CLIENTS as readonly string[]).includes(c)) throw new Error(`--clients: ${c} is not one of ${CLIENTS.join(",")}`);
  return {
    rounds: bounded("--rounds", 3, 20),
    durationS: bounded("--duration", 10, 120),
    concurrency: bounded("--concurrency", 64, 1024),
    clients: clients as Client[],
  };
}

/** A round starts once fewer cores than this are busy with others' work, or after QUIET_WAIT_MS anyway. */
const QUIET_BUSY_CORES = 0.5;
const QUIET_WAIT_MS = 30_000;
const APP = "edge-noop";
const MODEL = "edge-noop-node";
const INPUT = [1.1, 2.2, 3.3];
/** The key of grpcOutcomes's count of defaults. */
const DEFAULTS = "(default)";
const javaJar = join(benchDir, "java-client", "target", "grpc-edge-client.jar");

interface Measured {
  rps: number;
  p99Ms: number;
  requests: number;
  errors: number;
  /** The client's own CPU time over the run. */
  clientCpuMs: number;
}

class EdgeBench {
  private readonly tmp = mkdtempSync(join(tmpdir(), "grpc-edge-"));
  private readonly body = JSON.stringify({ input: INPUT });
  private readonly wrkScript = writeWrkPostScript(this.tmp, "post", { body: this.body });
  private readonly grpcRequest = JSON.stringify({ application: APP, input: { doubles: { values: INPUT } } });
  /** OIP ModelInfer of the same input: one FP64 tensor of shape [1, 3] (a batch of one) for the application. */
  private readonly oipRequest = JSON.stringify({
    model_name: APP,
    inputs: [{ name: "input", datatype: "FP64", shape: [1, INPUT.length], contents: { fp64_contents: INPUT } }],
  });

  private ghz(client: "ghz" | "ghz-oip", concurrency: number): string[] {
    return client === "ghz"
      ? ghzArgs(this.gateway, "predict", this.grpcRequest, concurrency)
      : ghzArgs(this.gateway, "oipModelInfer", this.oipRequest, concurrency);
  }

  /** The same two calls for h2load: method path and serialized request. */
  private readonly h2loadCalls = {
    h2load: { path: `/${GHZ_CALLS.predict.call}`, message: toBinary(PredictRequestSchema, fromJsonString(PredictRequestSchema, this.grpcRequest)) },
    "h2load-oip": {
      path: `/${GHZ_CALLS.oipModelInfer.call}`,
      message: toBinary(ModelInferRequestSchema, fromJsonString(ModelInferRequestSchema, this.oipRequest)),
    },
  } as const;

  constructor(
    private readonly gateway: string,
    private readonly options: Options,
  ) {}

  /**
   * The gateway's count of gRPC and OIP-gRPC requests it answered with an error, by code: h2load cannot read
   * grpc-status. The application's defaults are answers here, as for the other clients (said on stderr:
   * they are mostly the calls in flight when a run ends, whose closed streams the router answers so);
   * cancelled calls are left out: they are the calls in flight when h2load stops and closes its connections
   * (ghz leaves out the calls its -z cuts the same way).
   */
  private async grpcOutcomes(): Promise<Map<string, number>> {
    const text = await (await fetch(`http://${this.gateway}/metrics`)).text();
    const byCode = new Map<string, number>();
    let defaults = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith("clipper_gateway_requests_total{") || !/protocol="(grpc|oip-grpc)"/.test(line)) continue;
      const code = /code="([^"]*)"/.exec(line)?.[1] ?? "?";
      if (line.includes('outcome="answered"') || code === "cancelled") continue;
      if (line.includes('outcome="default"')) {
        defaults += Number(line.slice(line.lastIndexOf(" ") + 1));
        continue;
      }
      byCode.set(code, (byCode.get(code) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
    }
    byCode.set(DEFAULTS, defaults);
    return byCode;
  }

  /** The gateway's failed gRPC calls since `before`, each code (and the defaults) said on stderr. */
  private async grpcErrorsSince(before: Map<string, number>): Promise<number> {
    let total = 0;
    for (const [code, n] of await this.grpcOutcomes()) {
      const since = n - (before.get(code) ?? 0);
      if (since <= 0) continue;
      if (code === DEFAULTS) {
        console.error(`gateway: ${since} gRPC calls answered the application's default`);
        continue;
      }
      console.error(`gateway: ${since} gRPC calls failed: ${code}`);
      total += since;
    }
    return total;
  }

  close(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }

  /** One request per client, its answer checked, before any timing. */
  async check(client: Client): Promise<void> {
    const expectOutput = (text: string) => {
      if (!/"output":\s*"0"/.test(text)) throw new Error(`${client} got an unexpected answer: ${text.slice(0, 500)}`);
    };
    switch (client) {
      case "wrk": {
        const res = await fetch(`http://${this.gateway}/${APP}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: this.body });
        const text = await res.text();
        if (res.status !== 200 || !/"output":0\b/.test(text)) throw new Error(`REST got ${res.status}: ${text}`);
        return;
      }
      case "ghz":
      case "ghz-oip": {
        const { stdout: out } = await runClient(ghzPath, [...this.ghz(client, 1), "-n", "1"], 30_000);
        if (!/\[OK\]\s+1 responses/.test(out)) throw new Error(`ghz's one call did not answer OK:\n${out}`);
        return;
      }
      case "h2load":
      case "h2load-oip": {
        // Its calls are ghz's, sent as bytes: one ghz call checks the answer, then one h2load call must be answered too.
        const before = await this.grpcOutcomes();
        const r = await runH2load({ target: this.gateway, ...this.h2loadCalls[client], concurrency: 1, durationS: 1, workDir: this.tmp });
        if (r.requests === 0 || r.errors > 0 || (await this.grpcErrorsSince(before)) > 0)
          throw new Error(`h2load's calls were not answered: ${JSON.stringify(r)}`);
        return;
      }
      case "python":
        expectOutput(
          (await runClient(systemPython, [join(benchDir, "grpc_edge_client.py"), "--target", this.gateway, "--application", APP, "--check"], 30_000)).stdout,
        );
        return;
      case "java":
        expectOutput((await runClient("java", ["-jar", javaJar, "--target", this.gateway, "--application", APP, "--check"], 60_000)).stdout);
        return;
    }
  }

  async measure(client: Client): Promise<Measured> {
    const { durationS, concurrency } = this.options;
    const timeoutMs = (durationS + 60) * 1000;
    switch (client) {
      case "wrk": {
        const r = await runWrk({ url: `http://${this.gateway}/${APP}/predict`, scriptPath: this.wrkScript, concurrency, durationS });
        return { rps: (r.requests - r.bad) / r.durationS, p99Ms: r.p99Ms, requests: r.requests, errors: r.bad + r.socketErrors, clientCpuMs: r.clientCpuMs };
      }
      case "ghz":
      case "ghz-oip": {
        const summary = await runGhz(this.ghz(client, concurrency), durationS);
        for (const e of summary.errors) console.error(`ghz: ${e.count} x ${e.message}`);
        const errors = summary.errors.reduce((n, e) => n + e.count, 0);
        return { rps: summary.rps, p99Ms: summary.p99Ms, requests: summary.ok, errors, clientCpuMs: summary.clientCpuMs };
      }
      case "h2load":
      case "h2load-oip": {
        const before = await this.grpcOutcomes();
        const r = await runH2load({ target: this.gateway, ...this.h2loadCalls[client], concurrency, durationS, workDir: this.tmp });
        return { rps: r.rps, p99Ms: r.p99Ms, requests: r.requests, errors: r.errors + (await this.grpcErrorsSince(before)), clientCpuMs: r.clientCpuMs };
      }
      case "python":
      case "java": {
        const command = client === "python" ? systemPython : "java";
        const args = client === "python" ? [join(benchDir, "grpc_edge_client.py")] : ["-XX:+UseParallelGC", "-jar", javaJar];
        const { stdout } = await runClient(
          command,
          [...args, "--target", this.gateway, "--application", APP, "--concurrency", String(concurrency), "--duration", String(durationS)],
          timeoutMs,
        );
        const report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { requests: number; errors: number; rps: number; p99_ms: number; cpu_s: number };
        // The client's own count of its CPU (its worker processes exit before a sample could see them).
        return { rps: report.rps, p99Ms: report.p99_ms, requests: report.requests, errors: report.errors, clientCpuMs: report.cpu_s * 1000 };
      }
    }
  }
}

function label(client: Client): string {
  return {
    wrk: "REST (wrk)",
    ghz: "gRPC (ghz)",
    "ghz-oip": "OIP ModelInfer (ghz)",
    h2load: "gRPC (h2load)",
    "h2load-oip": "OIP ModelInfer (h2load)",
    python: "gRPC (Python grpcio)",
    java: "gRPC (Java grpc-java)",
  }[client];
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (options.clients.some((c) => c.startsWith("ghz")) && !existsSync(ghzPath)) {
    throw new Error(`${ghzPath} is missing: GOBIN=$PWD/.tools/bin go install github.com/bojand/ghz/cmd/ghz@latest`);
  }
  if (options.clients.includes("java") && !existsSync(javaJar)) throw new Error(`${javaJar} is missing: (cd bench/java-client && mvn -q package)`);
  const system = new TestSystem({ routerInProcess: true });
  // Stopped on Ctrl-C or a timeout's SIGTERM too: its services are child processes that would outlive the bench.
  const stopOnSignal = () => void system.stop().finally(() => process.exit(130));
  process.once("SIGINT", stopOnSignal);
  process.once("SIGTERM", stopOnSignal);
  await system.start();
  const bench = new EdgeBench(system.address("gateway"), options);
  try {
    await system.deployApp(APP, nodeModel(MODEL, "noop.ts"));
    for (const client of options.clients) await bench.check(client);
    const gatewayPid = system.pid("gateway") ?? 0;
    // BENCH_COMMIT names the tree when it is an export without .git (as bench/run.sh --at makes).
    const commit =
      process.env.BENCH_COMMIT ??
      execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: join(benchDir, "..") })
        .toString()
        .trim();
    console.log(`# gRPC edge against REST: ${new Date().toISOString()}, commit ${commit} (working tree), ${cpus().length} cores`);
    console.log(
      `# ${options.rounds} rounds x ${options.durationS} s per client, ${options.concurrency} callers, clients alternating: ${options.clients.join(", ")}`,
    );
    console.log("| round | client | req/s | p99 ms | errors | gateway CPU µs/req | client CPU µs/req | / REST |");
    console.log("| ----- | ------ | ----- | ------ | ------ | ------------------ | ----------------- | ------ |");
    for (let round = 1; round <= options.rounds; round++) {
      // Every other round the order is reversed, so that no client always runs first after a pause.
      const order = round % 2 === 1 ? options.clients : [...options.clients].reverse();
      // Other people's work on this shared machine: wait (bounded) for it to calm down, and say how busy it was.
      const busy = await waitForQuiet(cpus().length, QUIET_BUSY_CORES, QUIET_WAIT_MS);
      console.log(`# round ${round}: ${busy === undefined ? "?" : busy.toFixed(1)} of ${cpus().length} cores busy before it (others' work)`);
      const results = new Map<Client, Measured & { cpuUsPerRequest: number; clientCpuUsPerRequest: number }>();
      for (const client of order) {
        const cpuBefore = cpuMs(gatewayPid);
        const m = await bench.measure(client);
        const cpuUsPerRequest = ((cpuMs(gatewayPid) - cpuBefore) * 1000) / Math.max(1, m.requests);
        const clientCpuUsPerRequest = (m.clientCpuMs * 1000) / Math.max(1, m.requests);
        results.set(client, { ...m, cpuUsPerRequest, clientCpuUsPerRequest });
      }
      const rest = results.get("wrk")?.rps;
      for (const client of options.clients) {
        const r = results.get(client);
        if (r === undefined) continue;
        const ratio = rest === undefined ? "" : (r.rps / rest).toFixed(2);
        console.log(
          `| ${round} | ${label(client)} | ${Math.round(r.rps)} | ${r.p99Ms.toFixed(1)} | ${r.errors} | ${Math.round(r.cpuUsPerRequest)} | ${Math.round(r.clientCpuUsPerRequest)} | ${ratio} |`,
        );
      }
    }
  } finally {
    bench.close();
    await system.stop();
  }
}

await main();
