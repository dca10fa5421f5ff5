// Peers measured in the same run as us: Seldon MLServer (its default setting, and adaptive batching
// with parallel workers) and NVIDIA Triton through pytriton (dynamic batching), serving the same
// three models (bench/models/: no-op, scikit-learn digits, fixed cost), all driven over the Open
// Inference Protocol, REST and gRPC, by the same load generator at the same concurrencies,
// alternating systems within each round. Their servers live in bench/.venv-peers (bench/run.sh).
// The load generators are wrk (REST) and ghz (gRPC), compiled clients that a server's speed here
// cannot hide behind; --peer-loadgen node drives the same points with our Node clients instead.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, Helper } from "./helper-process.js";
import { ghzArgs, ghzLoadResult, runGhz } from "./loadgen/ghz.js";
import type { InputMix } from "./loadgen/inputs.js";
import type { LoadResult } from "./loadgen/loadgen.js";
import { OIP_REST_DEFAULT_MARKER, oipGhzRequest, oipGrpcTarget, oipRestAnswers, oipRestBody, oipRestTarget } from "./loadgen/oip.js";
import type { Target } from "./loadgen/targets.js";
import { runWrk, writeWrkPostScript, wrkLoadResult } from "./loadgen/wrk.js";
import type { Point } from "./report.js";

export const peersVenvPython = (benchDir: string) => join(benchDir, ".venv-peers", "bin", "python");

export const PEER_MODELS = ["noop", "sklearn", "fixed"] as const;
export type PeerModel = (typeof PEER_MODELS)[number];
export const PEER_TRANSPORTS = ["rest", "grpc"] as const;

/** A server speaking OIP, and its name for each benchmark model. */
export interface OipServer {
  /** clipper, mlserver, mlserver-batched, triton. */
  name: string;
  /** The system it is a setting of (clipper, mlserver, triton): ratios compare a system's best setting. */
  family: string;
  restBase: string;
  grpcAddress: string;
  models: Record<PeerModel, string>;
}

export interface PeerOptions {
  mlserver: boolean;
  /** parallel_workers in MLServer's tuned setting (the machine's cores by default). */
  mlserverWorkers: number;
  triton: boolean;
}

const execFileAsync = promisify(execFile);
const PEER_START_TIMEOUT_MS = 180_000;
const samePeerModels: Record<PeerModel, string> = { noop: "noop", sklearn: "sklearn", fixed: "fixed" };

/** Starts the chosen peers, each setting its own server; pushed into `helpers` as they come up, so the caller stops them. */
export async function startPeers(options: PeerOptions, python: string, benchDir: string, outDir: string, helpers: Helper[]): Promise<OipServer[]> {
  const servers: OipServer[] = [];
  const mlserverSettings: Array<[string, string[]]> = [
    ["mlserver", []],
    ["mlserver-batched", ["--workers", String(options.mlserverWorkers), "--adaptive-batching"]],
  ];
  for (const [name, flags] of options.mlserver ? mlserverSettings : []) {
    const [httpPort, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const repo = join(outDir, "peers", name);
    mkdirSync(repo, { recursive: true });
    console.log(`starting MLServer (${name}) ...`);
    const args = [join(benchDir, "peers", "mlserver_serve.py"), "--repo", repo, ...portArgs(httpPort, grpcPort, metricsPort), ...flags];
    helpers.push(await Helper.start(`MLServer (${name})`, python, args, PEER_START_TIMEOUT_MS));
    servers.push({ name, family: "mlserver", restBase: `http://127.0.0.1:${httpPort}`, grpcAddress: `127.0.0.1:${grpcPort}`, models: samePeerModels });
  }
  if (options.triton) {
    const [httpPort, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    console.log("starting Triton (pytriton) ...");
    const args = [join(benchDir, "peers", "triton_serve.py"), ...portArgs(httpPort, grpcPort, metricsPort)];
    helpers.push(await Helper.start("Triton (pytriton)", python, args, PEER_START_TIMEOUT_MS));
    servers.push({ name: "triton", family: "triton", restBase: `http://127.0.0.1:${httpPort}`, grpcAddress: `127.0.0.1:${grpcPort}`, models: samePeerModels });
  }
  return servers;
}

const portArgs = (http: number, grpc: number, metrics: number) => ["--http-port", String(http), "--grpc-port", String(grpc), "--metrics-port", String(metrics)];

/**
 * Every server's answers to the same inputs, over REST and gRPC, must equal ours (the digits model's
 * labels; the no-op's and fixed-cost model's "0"), or nothing is timed.
 */
export async function checkAnswers(ours: OipServer, peers: OipServer[], inputs: Record<PeerModel, number[][]>): Promise<void> {
  for (const model of PEER_MODELS) {
    const expected = await oipRestAnswers(ours.restBase, ours.models[model], inputs[model]);
    for (const server of [ours, ...peers]) {
      const grpc = oipGrpcTarget(server.grpcAddress, server.models[model], { name: "check", distinct: null, values: () => [], restBody: () => "" });
      try {
        const answers = {
          rest: await oipRestAnswers(server.restBase, server.models[model], inputs[model]),
          grpc: await grpc.infer(inputs[model]),
        };
        for (const [transport, got] of Object.entries(answers)) {
          if (got.length !== expected.length || got.some((v, i) => v !== expected[i])) {
            throw new Error(`${server.name} ${model} over ${transport} answered [${got.join(",")}], ours [${expected.join(",")}]`);
          }
        }
      } finally {
        grpc.close();
      }
    }
  }
}

/** Who drives the peers: wrk and ghz (the default), or our Node clients (bench/loadgen/raw-http.ts, grpc-js). */
export const PEER_LOADGENS = ["wrk-ghz", "node"] as const;
export type PeerLoadgen = (typeof PEER_LOADGENS)[number];

/** A point's load: our Node clients' target, or an external client's run of a given length. */
export type PeerDriver =
  | { kind: "node"; makeTarget: (connections: number) => Target }
  | { kind: "external"; run: (durationS: number) => Promise<LoadResult & { clientCpuMs: number }> };

/** What the comparison needs of the benchmark: one closed-loop point at one concurrency. */
export type MeasurePoint = (
  scenario: string,
  labels: Pick<Point, "system" | "model" | "transport" | "mix">,
  concurrency: number,
  driver: PeerDriver,
) => Promise<void>;

export const peerScenario = (round: number, server: string, model: PeerModel, transport: string) => `peers/r${round}/${server}/${model}/${transport}`;

/** ghz's connections for `concurrency` callers: one each, as wrk opens one per caller, up to this many. */
const MAX_GHZ_CONNECTIONS = 64;

/** Rounds × models × transports × concurrencies, every server in turn at each point (rotated by round, so none is always first). */
export async function measurePeers(params: {
  servers: OipServer[];
  rounds: number;
  concurrencies: number[];
  mixes: Record<PeerModel, InputMix>;
  loadgen: PeerLoadgen;
  httpClient: "raw" | "node-http";
  measure: MeasurePoint;
}): Promise<void> {
  const { servers } = params;
  const scripts = mkdtempSync(join(tmpdir(), "peers-wrk-"));
  try {
    for (let round = 1; round <= params.rounds; round++) {
      for (const model of PEER_MODELS) {
        for (const transport of PEER_TRANSPORTS) {
          for (const concurrency of params.concurrencies) {
            for (let i = 0; i < servers.length; i++) {
              const server = servers[(i + round - 1) % servers.length] as OipServer;
              const mix = params.mixes[model];
              const driver = peerDriver({ server, model, transport, mix, concurrency, scripts, ...params });
              await params.measure(
                peerScenario(round, server.name, model, transport),
                { system: server.name, model, transport: `oip-${transport}`, mix: params.loadgen === "node" ? mix.name : "same-body" },
                concurrency,
                driver,
              );
            }
          }
        }
      }
    }
  } finally {
    rmSync(scripts, { recursive: true, force: true });
  }
}

/** One point's driver. wrk and ghz send one body per model (the mix's first input): no model here caches. */
function peerDriver(p: {
  server: OipServer;
  model: PeerModel;
  transport: (typeof PEER_TRANSPORTS)[number];
  mix: InputMix;
  concurrency: number;
  scripts: string;
  loadgen: PeerLoadgen;
  httpClient: "raw" | "node-http";
}): PeerDriver {
  const name = p.server.models[p.model];
  if (p.loadgen === "node") {
    return p.transport === "rest"
      ? { kind: "node", makeTarget: (connections) => oipRestTarget({ baseUrl: p.server.restBase, model: name, mix: p.mix, connections, client: p.httpClient }) }
      : { kind: "node", makeTarget: () => oipGrpcTarget(p.server.grpcAddress, name, p.mix) };
  }
  const values = p.mix.values(0);
  if (p.transport === "rest") {
    const scriptPath = writeWrkPostScript(p.scripts, `${p.server.name}-${p.model}`, { body: oipRestBody(values), defaultMarker: OIP_REST_DEFAULT_MARKER });
    const url = `${p.server.restBase}/v2/models/${name}/infer`;
    return {
      kind: "external",
      run: async (durationS) => {
        const r = await runWrk({ url, scriptPath, concurrency: p.concurrency, durationS });
        return { ...wrkLoadResult(r, p.concurrency), clientCpuMs: r.clientCpuMs };
      },
    };
  }
  const args = ghzArgs(p.server.grpcAddress, "oipModelInfer", oipGhzRequest(name, values), p.concurrency, Math.min(p.concurrency, MAX_GHZ_CONNECTIONS));
  return {
    kind: "external",
    run: async (durationS) => {
      const s = await runGhz(args, durationS);
      return { ...ghzLoadResult(s, p.concurrency), clientCpuMs: s.clientCpuMs };
    },
  };
}

export interface PeerRatio {
  model: PeerModel;
  transport: string;
  concurrency: number;
  peer: string;
  /** The peer's setting with the highest mean throughput here. */
  bestSetting: string;
  oursThroughput: number;
  peerThroughput: number;
  /** ours / peer, from the means over rounds. */
  ratio: number;
  /** The smallest and largest ratio of a single round (the noise). */
  roundRatios: number[];
  oursP99Ms: number;
  peerP99Ms: number;
  /** Errors or defaults seen at the point, either side. */
  errorRate: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Ours against each peer system's best setting, per model, transport and concurrency. */
export function peerRatios(points: Point[], servers: OipServer[], rounds: number): PeerRatio[] {
  const at = (server: string, model: PeerModel, transport: string, concurrency: number) =>
    Array.from({ length: rounds }, (_, r) =>
      points.find((p) => p.scenario === peerScenario(r + 1, server, model, transport) && p.concurrency === concurrency),
    ).filter((p): p is Point => p !== undefined);
  const ours = servers.find((s) => s.family === "clipper");
  if (ours === undefined) return [];
  const families = [...new Set(servers.filter((s) => s.family !== "clipper").map((s) => s.family))];
  const concurrencies = [...new Set(points.flatMap((p) => (p.scenario.startsWith("peers/") && p.concurrency !== null ? [p.concurrency] : [])))].sort(
    (a, b) => a - b,
  );
  const ratios: PeerRatio[] = [];
  for (const model of PEER_MODELS) {
    for (const transport of PEER_TRANSPORTS) {
      for (const concurrency of concurrencies) {
        const oursPoints = at(ours.name, model, transport, concurrency);
        if (oursPoints.length === 0) continue;
        for (const family of families) {
          const settings = servers
            .filter((s) => s.family === family)
            .map((s) => ({ name: s.name, points: at(s.name, model, transport, concurrency) }))
            .filter((s) => s.points.length > 0)
            .sort((a, b) => mean(b.points.map((p) => p.throughput)) - mean(a.points.map((p) => p.throughput)));
          const best = settings[0];
          if (best === undefined) continue;
          const oursThroughput = mean(oursPoints.map((p) => p.throughput));
          const peerThroughput = mean(best.points.map((p) => p.throughput));
          const roundRatios = oursPoints.flatMap((p, i) => {
            const peer = best.points[i];
            return peer === undefined ? [] : [p.throughput / peer.throughput];
          });
          ratios.push({
            model,
            transport,
            concurrency,
            peer: family,
            bestSetting: best.name,
            oursThroughput,
            peerThroughput,
            ratio: oursThroughput / peerThroughput,
            roundRatios,
            oursP99Ms: mean(oursPoints.map((p) => p.p99Ms)),
            peerP99Ms: mean(best.points.map((p) => p.p99Ms)),
            errorRate: Math.max(...[...oursPoints, ...best.points].map((p) => p.errorRate + p.defaultRate)),
          });
        }
      }
    }
  }
  return ratios;
}

export function renderPeerTable(ratios: PeerRatio[]): string {
  const lines = [
    "| model | transport | clients | peer (best setting) | ours/s | peer/s | ours/peer (rounds) | p99 ours / peer ms | errors |",
    "| --- | --- | ---: | --- | ---: | ---: | --- | --- | ---: |",
  ];
  for (const r of ratios) {
    const rounds = r.roundRatios.map((x) => x.toFixed(1)).join(", ");
    lines.push(
      `| ${r.model} | ${r.transport} | ${r.concurrency} | ${r.peer} (${r.bestSetting}) | ${r.oursThroughput.toFixed(0)} | ${r.peerThroughput.toFixed(0)} | ` +
        `**${r.ratio.toFixed(1)}×** (${rounds}) | ${r.oursP99Ms.toFixed(1)} / ${r.peerP99Ms.toFixed(1)} | ${(r.errorRate * 100).toFixed(1)}% |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export interface PerfAnalyzerRun {
  server: string;
  model: PeerModel;
  protocol: "http" | "grpc";
  concurrency: number;
  throughput: number;
  /** perf_analyzer's p99 latency (ms); NaN when it printed none. */
  p99Ms: number;
  /** Why the run failed (its throughput and p99 are then NaN). */
  error?: string;
}

/** Values per input of each benchmark model (the digits model's 8x8 images). */
const INPUT_WIDTH: Record<PeerModel, number> = { noop: 8, sklearn: 64, fixed: 8 };

/**
 * Triton's own load generator (perf_analyzer, installed by .ci/run) against our OIP endpoint and
 * Triton's, one short run each: it reads each server's ModelMetadata and ModelConfig and sends
 * random FP64 inputs of one row. Ours declares no batch dimension (shape [-1, -1]), Triton's
 * models one (max_batch_size 256), hence the two --shape forms of the same [1, k] tensor.
 */
export async function perfAnalyzerRuns(params: {
  binary: string;
  libs: string;
  servers: OipServer[];
  concurrency: number;
  measurementMs: number;
}): Promise<PerfAnalyzerRun[]> {
  const runs: PerfAnalyzerRun[] = [];
  for (const model of PEER_MODELS) {
    for (const protocol of ["http", "grpc"] as const) {
      for (const server of params.servers) {
        const url = protocol === "http" ? server.restBase.replace(/^http:\/\//, "") : server.grpcAddress;
        const shape = server.family === "clipper" ? `input:1,${INPUT_WIDTH[model]}` : `input:${INPUT_WIDTH[model]}`;
        const args = ["-m", server.models[model], "-u", url, "-i", protocol, "--shape", shape, "-b", "1"];
        args.push("--concurrency-range", `${params.concurrency}:${params.concurrency}`, "--measurement-interval", String(params.measurementMs));
        // On a shared machine the run rarely stabilises (it then exits 1): any spread between windows is accepted.
        args.push("--max-trials", "3", "-s", "1000");
        const env = { ...process.env, LD_LIBRARY_PATH: [params.libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":") };
        // A failing run is recorded with its error, and the others still run.
        try {
          const { stdout } = await execFileAsync(params.binary, args, { env, timeout: 120_000, maxBuffer: 1 << 20 });
          const summary = /Concurrency: (\d+), throughput: ([\d.]+) infer\/sec/.exec(stdout);
          if (summary === null) throw new Error(`no summary in\n${stdout.slice(-2000)}`);
          const p99 = [...stdout.matchAll(/p99 latency: (\d+) usec/g)].at(-1)?.[1];
          const run = { server: server.name, model, protocol, concurrency: Number(summary[1]), throughput: Number(summary[2]), p99Ms: Number(p99) / 1000 };
          console.log(`perf_analyzer ${server.name}/${model}/${protocol} c=${run.concurrency}: ${run.throughput.toFixed(0)}/s p99 ${run.p99Ms.toFixed(2)} ms`);
          runs.push(run);
        } catch (err) {
          const error = String(err).slice(0, 500);
          console.error(`perf_analyzer ${server.name}/${model}/${protocol} failed: ${error}`);
          runs.push({ server: server.name, model, protocol, concurrency: params.concurrency, throughput: Number.NaN, p99Ms: Number.NaN, error });
        }
      }
    }
  }
  return runs;
}

export function renderPerfAnalyzerTable(runs: PerfAnalyzerRun[]): string {
  const lines = ["| model | protocol | clients | server | infer/s | p99 ms |", "| --- | --- | ---: | --- | ---: | ---: |"];
  for (const r of runs) {
    const figures = r.error === undefined ? `${r.throughput.toFixed(0)} | ${r.p99Ms.toFixed(1)}` : `failed: ${r.error.split("\n")[0]} | —`;
    lines.push(`| ${r.model} | ${r.protocol} | ${r.concurrency} | ${r.server} | ${figures} |`);
  }
  return `${lines.join("\n")}\n`;
}
