// Overload: what the system answers when more arrives than its model can serve
// within the SLO. The seed's hello-world (a 100 ms SLO) behind `clipper up`'s
// layout (the router in the gateway's process), with one of two models:
//   sum          the seed's Python sum model: so cheap that the capacity is the
//                host's CPU (gateway, generator and model share two cores);
//   accelerator  bench/models/accelerator.py, 20 ms + 0.5 ms per input slept,
//                batches of at most 16: the capacity (~570/s) is the model's, as
//                with a model on a GPU, and 10x of it is a load the cores can offer.
// First the capacity (model answers/s, closed loop at 200 clients), then open
// loop at 1x, 2x, 5x and 10x that rate and closed loop at 200, 1,000 and 6,000
// clients. For each: goodput against capacity, the share and latency of model
// answers, defaults and 429s, the gateway's event-loop lag and memory, CPU per
// request, and the connections the kernel dropped from the accept queue.
//   node --import tsx bench/overload.ts [--model sum|accelerator] [--seconds S] [--slo-ms MS]
//     [--generator vegeta|node] [--phases REGEX] [--out FILE]
// The load comes from vegeta (bench/loadgen/vegeta.ts) when it is installed,
// else from the Node generator, which cannot offer more than ~6-8k/s here.
// Everything runs on 127.0.0.1; every phase is bounded in time and requests.
import fs from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pythonFileModel, repoRoot, TestSystem } from "../test/system.js";
import { LatencyHistogram } from "./loadgen/histogram.js";
import { uniqueMix } from "./loadgen/inputs.js";
import { type Outcome, runClosedLoop, runOpenLoop } from "./loadgen/loadgen.js";
import { cpuMs, replicaPid } from "./loadgen/processes.js";
import { rawHttpClient } from "./loadgen/raw-http.js";
import { gatewayDefault } from "./loadgen/targets.js";
import { runVegeta, vegetaPath } from "./loadgen/vegeta.js";

const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const seconds = Number(arg("--seconds") ?? 8);
if (!(seconds > 0 && seconds <= 60)) throw new Error("--seconds must be in (0, 60]");
const sloMs = Number(arg("--slo-ms") ?? 100);
if (!(sloMs >= 10 && sloMs <= 10_000)) throw new Error("--slo-ms must be in [10, 10000]");
const modelName = arg("--model") ?? "sum";
/**
 * capacityClients: the closed loop that measures the capacity. By Little's law it must hold no more queries than the
 * model answers within the SLO (answers/s x SLO), or the capacity phase is an overload itself: 200 suits the sum model
 * (~7,500/s x 100 ms), 40 the accelerator (~570/s x 100 ms = 57).
 */
const MODELS: Record<string, { file: string; maxBatchSize?: number; capacityClients: number; describe: string }> = {
  sum: { file: join(repoRoot, "examples", "sum_model.py"), capacityClients: 200, describe: "the Python sum model" },
  accelerator: {
    file: join(repoRoot, "bench", "models", "accelerator.py"),
    maxBatchSize: 16,
    capacityClients: 40,
    describe: "bench/models/accelerator.py (20 ms + 0.5 ms per input, batches <= 16)",
  },
};
const model = MODELS[modelName];
if (model === undefined) throw new Error(`--model must be one of ${Object.keys(MODELS).join(", ")}`);
const phases = new RegExp(arg("--phases") ?? ".");
const outFile = arg("--out") ?? join(repoRoot, "bench", "out", `overload-${modelName}.json`);
const vegeta = vegetaPath(repoRoot);
const generator = arg("--generator") ?? (vegeta ? "vegeta" : "node");
if (generator !== "vegeta" && generator !== "node") throw new Error("--generator must be vegeta or node");
if (generator === "vegeta" && vegeta === undefined)
  throw new Error("vegeta not found: GOBIN=$PWD/.tools/bin go install github.com/tsenart/vegeta/v12@v12.12.0, or set CLIPPER_VEGETA");
/** Connections dropped machine-wide because a listener's accept queue was full (/proc/net/netstat, TcpExt ListenDrops). */
function listenDrops(): number {
  const lines = fs
    .readFileSync("/proc/net/netstat", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("TcpExt:"));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  const at = names?.indexOf("ListenDrops") ?? -1;
  return at < 0 || values === undefined ? Number.NaN : Number(values[at]);
}

/** Bounds every phase whatever the rate. */
const MAX_REQUESTS = 2_000_000;

type Kind = "model" | "default" | "shed" | "error";

/** One phase's answers by kind, with their latencies. */
class KindTally {
  readonly counts: Record<Kind, number> = { model: 0, default: 0, shed: 0, error: 0 };
  readonly latency: Record<Kind, LatencyHistogram> = {
    model: new LatencyHistogram(),
    default: new LatencyHistogram(),
    shed: new LatencyHistogram(),
    error: new LatencyHistogram(),
  };
  readonly all = new LatencyHistogram();
  measuring = false;

  record(kind: Kind, ms: number): void {
    if (!this.measuring) return;
    this.counts[kind]++;
    this.latency[kind].record(ms * 1000);
    this.all.record(ms * 1000);
  }
}

interface PhaseResult {
  phase: string;
  offeredPerS: number;
  goodputPerS: number;
  goodputOfCapacity: number;
  share: Record<Kind, number>;
  p50Ms: Record<Kind, number>;
  p99Ms: Record<Kind, number>;
  p99AllMs: number;
  maxAllMs: number;
  loopLagP99Ms: number;
  loopLagMaxMs: number;
  gatewayRssPeakMiB: number;
  gatewayRssAfter5sMiB: number;
  /** Connections the kernel dropped because the gateway's accept queue was full (TcpExtListenDrops, the whole machine's). */
  listenDrops: number;
  /** CPU time per request sent (µs), warm-up included: the load generator's (vegeta only), the gateway's, the model replica's. */
  cpuMicrosPerRequest: { generator: number; gateway: number; model: number };
}

const system = new TestSystem({ routerInProcess: true });
const results: PhaseResult[] = [];
try {
  await system.start();
  await system.deployApp(
    "hello-world",
    { ...pythonFileModel("sum-model", model.file), ...(model.maxBatchSize ? { maxBatchSize: model.maxBatchSize } : {}) },
    {
      sloMicros: BigInt(sloMs * 1000),
      timeoutSeconds: 120,
    },
  );
  const gatewayPid = system.pid("gateway") ?? 0;
  const modelPid = replicaPid("sum-model");
  const port = Number(new URL(system.gatewayUrl).port);
  const mix = uniqueMix("unique", [1.1, 2.2, 3.3]);
  let tally = new KindTally();
  /** One REST client per phase, sized for its concurrency; answers classified by kind. */
  const client = (connections: number) => {
    let kindOf: Kind = "model";
    const raw = rawHttpClient({
      host: "127.0.0.1",
      port,
      path: "/hello-world/predict",
      connections,
      maxWaiting: 100_000,
      timeoutMs: 30_000,
      body: mix.restBody,
      classify: (status, body): Outcome => {
        kindOf = status === 429 ? "shed" : status !== 200 ? "error" : gatewayDefault(body) ? "default" : "model";
        return kindOf === "model" ? "ok" : "default";
      },
    });
    const send = async (sequence: number): Promise<Outcome> => {
      const startedAt = performance.now();
      try {
        const outcome = await raw.send(sequence);
        // classify ran just before this continuation: its kind is this request's.
        tally.record(outcome === "ok" ? "model" : kindOf, performance.now() - startedAt);
        return outcome;
      } catch (err) {
        tally.record("error", performance.now() - startedAt);
        throw err;
      }
    };
    return { send, close: () => raw.close() };
  };
  const gatewayMetrics = async () => (await fetch(`${system.gatewayUrl}/metrics`)).text();
  const gauge = (text: string, name: string) => Number(new RegExp(`^clipper_${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  const rssMiB = () => {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${gatewayPid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  };

  /** What a phase offers: a closed loop of clients, or an open loop at a rate. */
  type Load = { clients: number } | { ratePerSecond: number };
  const kindOf = (status: number, body: string): Kind => (status === 429 ? "shed" : status !== 200 ? "error" : gatewayDefault(body) ? "default" : "model");
  let nextSequence = 0;
  const measured = seconds * 1000;
  const warmupMs = 1000;

  /** Runs the load with the chosen generator; resolves with the measured seconds, the requests sent and the generator's CPU ms (vegeta only). */
  async function offer(load: Load): Promise<{ elapsedS: number; sent: number; generatorCpuMs: number }> {
    if (generator === "vegeta" && vegeta !== undefined) {
      const firstSequence = nextSequence;
      nextSequence += MAX_REQUESTS;
      tally.measuring = true;
      const attack = await runVegeta(
        {
          vegeta,
          url: `http://127.0.0.1:${port}/hello-world/predict`,
          mix,
          firstSequence,
          ...("ratePerSecond" in load ? { ratePerSecond: load.ratePerSecond, workers: 20_000 } : { workers: load.clients }),
          warmupMs,
          durationMs: measured,
          timeoutMs: 30_000,
          maxRequests: MAX_REQUESTS,
        },
        (r) => tally.record(r.error !== "" && r.status === 0 ? "error" : kindOf(r.status, r.body), r.latencyMs),
      );
      tally.measuring = false;
      return { elapsedS: seconds, sent: attack.sent, generatorCpuMs: attack.cpuMs };
    }
    // Open loop: enough connections for the rate at about a 25 ms answer; more cost both sides CPU for nothing.
    const connections = "ratePerSecond" in load ? Math.min(2000, Math.max(128, Math.ceil(load.ratePerSecond * 0.025))) : load.clients;
    const c = client(connections);
    let sent = 0;
    const send = (sequence: number) => {
      sent++;
      return c.send(sequence);
    };
    try {
      const common = { send, durationMs: measured, warmupMs, maxRequests: MAX_REQUESTS };
      const warm =
        "ratePerSecond" in load
          ? runOpenLoop({ ...common, ratePerSecond: load.ratePerSecond, maxInFlight: 20_000 })
          : runClosedLoop({ ...common, concurrency: load.clients });
      // Warm-up (connections open, batch sizes settle), not measured.
      await new Promise((r) => setTimeout(r, warmupMs));
      tally.measuring = true;
      const startedAt = performance.now();
      await warm;
      tally.measuring = false;
      return { elapsedS: (performance.now() - startedAt) / 1000, sent, generatorCpuMs: Number.NaN };
    } finally {
      c.close();
    }
  }

  async function phase(name: string, load: Load, capacity: number) {
    tally = new KindTally();
    let peak = rssMiB();
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMiB());
    }, 200);
    try {
      // Resets the event-loop histogram (prom-client resets it on every scrape).
      await gatewayMetrics();
      const cpuBefore = { gateway: cpuMs(gatewayPid), model: cpuMs(modelPid) };
      const dropsBefore = listenDrops();
      const { elapsedS, sent, generatorCpuMs } = await offer(load);
      const perRequest = (ms: number) => (sent === 0 ? 0 : (ms * 1000) / sent);
      const cpuMicrosPerRequest = {
        generator: perRequest(generatorCpuMs),
        gateway: perRequest(cpuMs(gatewayPid) - cpuBefore.gateway),
        model: perRequest(cpuMs(modelPid) - cpuBefore.model),
      };
      const drops = listenDrops() - dropsBefore;
      const text = await gatewayMetrics();
      const total = Object.values(tally.counts).reduce((a, b) => a + b, 0);
      const share = Object.fromEntries(Object.entries(tally.counts).map(([k, n]) => [k, total === 0 ? 0 : n / total])) as Record<Kind, number>;
      const q = (kind: Kind, p: number) => (tally.counts[kind] === 0 ? 0 : tally.latency[kind].quantile(p) / 1000);
      await new Promise((r) => setTimeout(r, 5000));
      const goodput = tally.counts.model / elapsedS;
      const result: PhaseResult = {
        phase: name,
        offeredPerS: total / elapsedS,
        goodputPerS: goodput,
        goodputOfCapacity: capacity > 0 ? goodput / capacity : 1,
        share,
        p50Ms: { model: q("model", 0.5), default: q("default", 0.5), shed: q("shed", 0.5), error: q("error", 0.5) },
        p99Ms: { model: q("model", 0.99), default: q("default", 0.99), shed: q("shed", 0.99), error: q("error", 0.99) },
        p99AllMs: tally.all.quantile(0.99) / 1000,
        maxAllMs: tally.all.quantile(1) / 1000,
        loopLagP99Ms: gauge(text, "nodejs_eventloop_lag_p99_seconds") * 1000,
        loopLagMaxMs: gauge(text, "nodejs_eventloop_lag_max_seconds") * 1000,
        gatewayRssPeakMiB: peak,
        gatewayRssAfter5sMiB: rssMiB(),
        listenDrops: drops,
        cpuMicrosPerRequest,
      };
      results.push(result);
      console.error(JSON.stringify(result));
      return result;
    } finally {
      clearInterval(sampler);
    }
  }

  // Warm the model and the router's latency model at half the capacity's load: more would be an overload already.
  const warmClients = Math.ceil(model.capacityClients / 2);
  await phase(`warm-up, ${warmClients} clients`, { clients: warmClients }, 0);
  const baselineRss = rssMiB();
  const capacity = (await phase(`capacity: closed loop, ${model.capacityClients} clients`, { clients: model.capacityClients }, 0)).goodputPerS;
  for (const factor of [1, 2, 5, 10]) {
    const rate = capacity * factor;
    const name = `open loop, ${factor}x capacity (${Math.round(rate)}/s)`;
    if (phases.test(name)) await phase(name, { ratePerSecond: rate }, capacity);
  }
  for (const clients of [...new Set([model.capacityClients, 200, 1000, 6000])]) {
    const name = `closed loop, ${clients} clients`;
    if (phases.test(name)) await phase(name, { clients }, capacity);
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const ms = (x: number) => x.toFixed(1);
  const lines = [
    `hello-world (${model.describe}, SLO ${sloMs} ms), router in the gateway's process, load from ${generator}; capacity ${capacity.toFixed(0)} model answers/s (closed loop, ${model.capacityClients} clients); ${seconds} s per phase after 1 s of warm-up; gateway RSS before the phases ${baselineRss.toFixed(0)} MiB`,
    "| phase | offered/s | goodput/s | of capacity | model / default / 429 / error | p99 ms model / default / 429 | p99 all ms | max ms | loop lag p99 / max ms | gateway RSS peak / +5 s MiB | CPU µs per request: generator / gateway / model | accept-queue drops |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...results
      .slice(1)
      .map(
        (r) =>
          `| ${r.phase} | ${r.offeredPerS.toFixed(0)} | ${r.goodputPerS.toFixed(0)} | ${pct(r.goodputOfCapacity)} | ${pct(r.share.model)} / ${pct(r.share.default)} / ${pct(r.share.shed)} / ${pct(r.share.error)} | ${ms(r.p99Ms.model)} / ${ms(r.p99Ms.default)} / ${ms(r.p99Ms.shed)} | ${ms(r.p99AllMs)} | ${ms(r.maxAllMs)} | ${ms(r.loopLagP99Ms)} / ${ms(r.loopLagMaxMs)} | ${r.gatewayRssPeakMiB.toFixed(0)} / ${r.gatewayRssAfter5sMiB.toFixed(0)} | ${r.cpuMicrosPerRequest.generator.toFixed(0)} / ${r.cpuMicrosPerRequest.gateway.toFixed(0)} / ${r.cpuMicrosPerRequest.model.toFixed(0)} | ${r.listenDrops} |`,
      ),
  ];
  console.log(lines.join("\n"));
  fs.mkdirSync(join(repoRoot, "bench", "out"), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify({ model: modelName, sloMs, seconds, capacity, baselineRss, results }, null, 2));
} finally {
  await system.stop();
}
