// The benchmark, one command: starts the system (test/system.ts), deploys the
// benchmark models, measures every scenario and baseline in one run, and writes
// bench/out/results.json, bench/out/summary.md and PNG plots.
//   node --import tsx bench/run.ts [--quick] [--no-ray] [--only REGEX] [--duration S] [--warmup S]
//     [--mlserver] [--mlserver-workers N] [--triton] [--rounds N] [--peer-loadgen wrk-ghz|node]   (peers: bench/peers.ts)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, freemem, totalmem } from "node:os";
import { join } from "node:path";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { repoRoot, TestSystem, waitFor } from "../test/system.js";
import { benchDir, type ModelSpec, modelsDir, nodeModel, pythonModel, systemPython } from "./deploy.js";
import { freePort, Helper } from "./helper-process.js";
import { type InputMix, repeatingMix, uniqueMix } from "./loadgen/inputs.js";
import { type LoadResult, runClosedLoop, runOpenLoop } from "./loadgen/loadgen.js";
import { waitForQuiet } from "./loadgen/machine-load.js";
import { cpuMs } from "./loadgen/processes.js";
import { gatewayDefault, grpcGatewayTarget, modelDirectTarget, restTarget, type Target } from "./loadgen/targets.js";
import {
  checkAnswers,
  measurePeers,
  type OipServer,
  PEER_LOADGENS,
  type PeerDriver,
  type PeerLoadgen,
  type PeerModel,
  type PeerOptions,
  type PerfAnalyzerRun,
  peerRatios,
  peersVenvPython,
  perfAnalyzerRuns,
  renderPeerTable,
  renderPerfAnalyzerTable,
  startPeers,
} from "./peers.js";
import { evaluateTargets, type Point, renderSummary } from "./report.js";

const benchPython = join(benchDir, ".venv", "bin", "python");

interface BenchOptions {
  quick: boolean;
  durationMs: number;
  warmupMs: number;
  concurrencies: number[];
  openLoopRates: number[];
  ray: boolean;
  only: RegExp | undefined;
  outDir: string;
  httpClient: "raw" | "node-http";
  peers: PeerOptions;
  /** Rounds of the peer comparison, every system measured once per point in each. */
  rounds: number;
  peerLoadgen: PeerLoadgen;
}

function parseArgs(argv: string[]): BenchOptions {
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const known = new Set([
    "--quick",
    "--no-ray",
    "--only",
    "--duration",
    "--warmup",
    "--out",
    "--http-client",
    "--mlserver",
    "--mlserver-workers",
    "--triton",
    "--rounds",
    "--peer-loadgen",
  ]);
  for (const arg of argv) if (arg.startsWith("--") && !known.has(arg)) throw new Error(`unknown flag ${arg}; known: ${[...known].join(" ")}`);
  const quick = argv.includes("--quick");
  const seconds = (name: string, fallback: number) => {
    const text = flag(name);
    const value = text === undefined ? fallback : Number(text);
    if (!(value > 0 && value <= 120)) throw new Error(`${name} must be a number of seconds in (0, 120], got ${text}`);
    return value * 1000;
  };
  const only = flag("--only");
  const httpClient = flag("--http-client") ?? "raw";
  if (httpClient !== "raw" && httpClient !== "node-http") throw new Error(`--http-client is raw or node-http, got ${httpClient}`);
  const peerLoadgen = flag("--peer-loadgen") ?? "wrk-ghz";
  if (!(PEER_LOADGENS as readonly string[]).includes(peerLoadgen)) throw new Error(`--peer-loadgen is ${PEER_LOADGENS.join(" or ")}, got ${peerLoadgen}`);
  const count = (name: string, fallback: number, max: number) => {
    const text = flag(name);
    const value = text === undefined ? fallback : Number(text);
    if (!(Number.isInteger(value) && value >= 1 && value <= max)) throw new Error(`${name} must be an integer in [1, ${max}], got ${text}`);
    return value;
  };
  return {
    quick,
    durationMs: seconds("--duration", quick ? 2 : 5),
    warmupMs: seconds("--warmup", quick ? 0.5 : 1),
    concurrencies: quick ? [1, 64] : [1, 16, 64, 256],
    openLoopRates: quick ? [500, 2000] : [250, 500, 1000, 2000, 4000],
    ray: !argv.includes("--no-ray"),
    only: only === undefined ? undefined : new RegExp(only),
    outDir: flag("--out") ?? join(benchDir, "out"),
    httpClient: httpClient === "node-http" ? "node-http" : "raw",
    peers: { mlserver: argv.includes("--mlserver"), mlserverWorkers: count("--mlserver-workers", cpus().length, 64), triton: argv.includes("--triton") },
    rounds: count("--rounds", 2, 10),
    peerLoadgen: peerLoadgen as PeerLoadgen,
  };
}

/** SLOs: generous where we measure raw latency, Clipper's usual 100 ms where the target says "within the SLO". */
const RAW_SLO_MICROS = 1_000_000n;
const BATCHING_SLO_MS = 100;

interface AppSpec {
  app: string;
  model: ModelSpec;
  sloMicros: bigint;
  cache?: boolean;
}

/** Cores busy on an idle benchmark above which the machine counts as shared with other work. */
const QUIET_CORES = 0.25;

class Bench {
  readonly points: Point[] = [];
  readonly notes: string[] = [];
  /** The OIP servers of the peer comparison, ours first, once started. */
  readonly peerServers: OipServer[] = [];
  /** perf_analyzer's runs against our OIP endpoint and Triton's (with --triton and CLIPPER_PERF_ANALYZER). */
  readonly perfAnalyzer: PerfAnalyzerRun[] = [];

  constructor(readonly options: BenchOptions) {}

  private selected(scenario: string): boolean {
    return this.options.only === undefined || this.options.only.test(scenario);
  }

  /** One closed-loop point per concurrency (the run's, unless given), each with fresh connections. */
  async closed(
    scenario: string,
    labels: Omit<Point, keyof LoadResult | "scenario" | "loadgenCpuCores" | "backgroundCpuCores">,
    makeTarget: (connections: number) => Target,
    concurrencies = this.options.concurrencies,
  ): Promise<void> {
    if (!this.selected(scenario)) return;
    for (const concurrency of concurrencies) {
      const target = makeTarget(concurrency);
      try {
        await this.measure(scenario, labels, () =>
          runClosedLoop({ send: target.send, concurrency, durationMs: this.options.durationMs, warmupMs: this.options.warmupMs }),
        );
      } finally {
        target.close();
      }
    }
  }

  async open(
    scenario: string,
    labels: Omit<Point, keyof LoadResult | "scenario" | "loadgenCpuCores" | "backgroundCpuCores">,
    makeTarget: (connections: number) => Target,
  ): Promise<void> {
    if (!this.selected(scenario)) return;
    const maxInFlight = 1024;
    for (const rate of this.options.openLoopRates) {
      const target = makeTarget(256);
      try {
        await this.measure(scenario, labels, () =>
          runOpenLoop({ send: target.send, ratePerSecond: rate, maxInFlight, durationMs: this.options.durationMs, warmupMs: this.options.warmupMs }),
        );
      } finally {
        target.close();
      }
    }
  }

  /**
   * One closed-loop point driven by an external client (wrk, ghz): a warm-up run, then the measured
   * one; `serverPid`, when given, is the process whose CPU time per answer the point records.
   */
  async external(
    scenario: string,
    labels: Omit<Point, keyof LoadResult | "scenario" | "loadgenCpuCores" | "backgroundCpuCores">,
    run: (durationS: number) => Promise<LoadResult & { clientCpuMs: number }>,
    serverPid?: number,
  ): Promise<void> {
    if (!this.selected(scenario)) return;
    await this.measure(scenario, labels, async () => {
      await run(this.options.warmupMs / 1000);
      const serverCpuBefore = serverPid === undefined ? 0 : cpuMs(serverPid);
      const { clientCpuMs, ...result } = await run(this.options.durationMs / 1000);
      const serverCpuUsPerAnswer =
        serverPid === undefined ? undefined : ((cpuMs(serverPid) - serverCpuBefore) * 1000) / Math.max(1, result.ok + result.defaults);
      return { result, clientCpuMs, serverCpuUsPerAnswer };
    });
  }

  private async measure(
    scenario: string,
    labels: Omit<Point, keyof LoadResult | "scenario" | "loadgenCpuCores" | "backgroundCpuCores">,
    run: () => Promise<LoadResult | { result: LoadResult; clientCpuMs: number; serverCpuUsPerAnswer: number | undefined }>,
  ): Promise<void> {
    const backgroundCpuCores = (await waitForQuiet(cpus().length, QUIET_CORES, this.options.quick ? 5_000 : 20_000)) ?? null;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const outcome = await run();
    const cpu = process.cpuUsage(cpuBefore);
    const elapsedMs = performance.now() - started;
    // An external client's own CPU (it ran in a child process) over its measured run; ours otherwise.
    const [result, loadgenCpuCores, serverCpuUsPerAnswer] =
      "clientCpuMs" in outcome
        ? [outcome.result, outcome.clientCpuMs / (outcome.result.durationS * 1000), outcome.serverCpuUsPerAnswer]
        : [outcome, (cpu.user + cpu.system) / 1000 / elapsedMs, undefined];
    const point: Point = {
      scenario,
      ...labels,
      ...result,
      loadgenCpuCores,
      backgroundCpuCores,
      ...(serverCpuUsPerAnswer === undefined ? {} : { serverCpuUsPerAnswer }),
    };
    this.points.push(point);
    const load = point.mode === "closed" ? `c=${point.concurrency}` : `rate=${point.targetRate}/s`;
    console.log(
      `${scenario.padEnd(28)} ${load.padEnd(11)} ${point.throughput.toFixed(0).padStart(7)}/s  p50 ${point.p50Ms.toFixed(2)} p99 ${point.p99Ms.toFixed(2)} ms` +
        `  bg ${backgroundCpuCores?.toFixed(2) ?? "?"} cores${serverCpuUsPerAnswer === undefined ? "" : `  gateway ${serverCpuUsPerAnswer.toFixed(0)} µs/answer`}  default ${(point.defaultRate * 100).toFixed(1)}% err ${(point.errorRate * 100).toFixed(1)}%${point.firstError ? ` (${point.firstError.slice(0, 80)})` : ""}`,
    );
  }
}

/**
 * Ours (the gateway's OIP endpoint: noop, sklearn and fixed-batched) against MLServer and Triton,
 * each peer started only now, checked, then measured in alternation with us (bench/peers.ts).
 */
async function comparePeers(
  bench: Bench,
  helpers: Helper[],
  ours: { restBase: string; grpcAddress: string; gatewayPid: number; mixes: Record<PeerModel, InputMix>; digits: number[][]; small: number[] },
): Promise<void> {
  const { options } = bench;
  const python = peersVenvPython(benchDir);
  if (!existsSync(python)) {
    bench.notes.push("Peers not measured: bench/.venv-peers is missing (bench/run.sh --mlserver/--triton creates it).");
    return;
  }
  const clipper: OipServer = {
    name: "clipper",
    family: "clipper",
    restBase: ours.restBase,
    grpcAddress: ours.grpcAddress,
    models: { noop: "noop", sklearn: "sklearn", fixed: "fixed-batched" },
  };
  const peers = await startPeers(options.peers, python, benchDir, options.outDir, helpers);
  const servers = [clipper, ...peers];
  await checkAnswers(clipper, peers, { noop: [ours.small, ours.small], sklearn: ours.digits, fixed: [ours.small, ours.small] });
  console.log(`answers checked: ${servers.map((s) => s.name).join(", ")} agree on every model, over REST and gRPC`);
  bench.peerServers.push(...servers);
  bench.notes.push(
    `Peers: ${peers.map((p) => p.name).join(", ")} (mlserver-batched: parallel_workers=${options.peers.mlserverWorkers}, adaptive batching; ` +
      `triton: dynamic batching), ${options.rounds} rounds alternating systems; all over OIP with FP64 [1, k] JSON/fp64_contents; ` +
      `load generator: ${options.peerLoadgen === "wrk-ghz" ? "wrk (REST) and ghz (gRPC), one body per model" : "ours (Node)"}.`,
  );
  await measurePeers({
    servers,
    rounds: options.rounds,
    concurrencies: options.concurrencies,
    mixes: ours.mixes,
    loadgen: options.peerLoadgen,
    httpClient: options.httpClient,
    measure: (scenario, labels, concurrency, driver: PeerDriver) =>
      driver.kind === "node"
        ? bench.closed(scenario, labels, driver.makeTarget, [concurrency])
        : bench.external(scenario, labels, driver.run, labels.system === "clipper" ? ours.gatewayPid : undefined),
  });
  const perfAnalyzer = process.env.CLIPPER_PERF_ANALYZER;
  const triton = servers.filter((s) => s.family === "triton");
  if (perfAnalyzer === undefined || triton.length === 0 || !(options.only === undefined || options.only.test("perf-analyzer"))) return;
  // After the comparison's points: a failing perf_analyzer is reported, and the points are kept.
  try {
    const runs = await perfAnalyzerRuns({
      binary: perfAnalyzer,
      libs: process.env.CLIPPER_PERF_ANALYZER_LIBS ?? "",
      servers: [clipper, ...triton],
      concurrency: 64,
      // Up to three windows per run (its stability trials), twelve runs: bounded to keep the run short.
      measurementMs: Math.min(options.durationMs, 5_000),
    });
    bench.perfAnalyzer.push(...runs);
  } catch (err) {
    bench.notes.push(`perf_analyzer failed: ${String(err).slice(0, 500)}`);
  }
}

const digitSamples = (): number[][] => {
  const out = execFileSync(systemPython, [join(modelsDir, "sklearn_digits.py")], { encoding: "utf8", timeout: 60_000 });
  return JSON.parse(out) as number[][];
};

function machine() {
  const cpuInfo = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "";
  const git = (...args: string[]) => {
    try {
      return execFileSync("git", args, { cwd: repoRoot, encoding: "utf8" }).trim();
    } catch {
      return "unknown";
    }
  };
  return {
    date: new Date().toISOString(),
    commit: process.env.BENCH_COMMIT ?? git("rev-parse", "--short", "HEAD"),
    uncommittedServiceChanges: process.env.BENCH_COMMIT ? "" : git("status", "--porcelain", "--", "services", "sdk", "test"),
    nproc: cpus().length,
    cpuModel: /model name\s*:\s*(.*)/.exec(cpuInfo)?.[1] ?? cpus()[0]?.model ?? "unknown",
    memTotalGiB: +(totalmem() / 2 ** 30).toFixed(1),
    memFreeGiB: +(freemem() / 2 ** 30).toFixed(1),
    node: process.version,
    command: process.env.BENCH_COMMAND ?? `node --import tsx bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  mkdirSync(options.outDir, { recursive: true });
  const meta = machine();
  const bench = new Bench(options);
  const digits = digitSamples();
  const small = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5];
  const unique = uniqueMix("unique", small);
  const uniqueDigits = uniqueMix("unique", digits[0] ?? []);

  const apps: AppSpec[] = [
    { app: "noop", model: pythonModel("noop-py", "noop.py"), sloMicros: RAW_SLO_MICROS },
    { app: "noop-node", model: nodeModel("noop-node", "noop.ts"), sloMicros: RAW_SLO_MICROS },
    { app: "sklearn", model: pythonModel("sklearn-digits", "sklearn_digits.py"), sloMicros: RAW_SLO_MICROS },
    { app: "fixed-b1", model: pythonModel("fixed-b1", "fixed_cost.py", 1), sloMicros: BigInt(BATCHING_SLO_MS * 1000) },
    { app: "fixed-batched", model: pythonModel("fixed-batched", "fixed_cost.py", 256), sloMicros: BigInt(BATCHING_SLO_MS * 1000) },
  ];
  // The cache app shares fixed-b1's model: each miss costs a 2 ms model call, a hit none.
  const cacheApp = "fixed-cached";

  const system = new TestSystem();
  const helpers: Helper[] = [];
  const stopAll = async () => {
    for (const h of helpers.splice(0)) await h.stop();
    await system.stop();
  };
  process.once("SIGINT", () => void stopAll().finally(() => process.exit(130)));
  try {
    console.log("starting the system and deploying the benchmark models ...");
    await system.start();
    const mgmt = system.management();
    for (const spec of apps) await system.deployApp(spec.app, spec.model, { sloMicros: spec.sloMicros, timeoutSeconds: 120 });
    await mgmt.createApplication({ name: cacheApp, inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: BigInt(BATCHING_SLO_MS * 1000) });
    await mgmt.updateApplication({ name: cacheApp, cacheEnabled: true });
    await mgmt.linkModel({ application: cacheApp, modelName: "fixed-b1" });
    const cacheSetting = (await mgmt.getApplication({ name: cacheApp })).application?.cacheEnabled;
    bench.notes.push(`Application ${cacheApp}: cache_enabled=${cacheSetting} after UpdateApplication.`);

    const endpoint = async (modelName: string) => {
      const r = await system.containerManager().listModelReplicas({ modelName });
      const e = r.replicas[0]?.endpoint;
      if (e === undefined) throw new Error(`no replica of ${modelName}`);
      return e;
    };
    const gw = system.gatewayUrl;
    for (const spec of [...apps.map((a) => a.app), cacheApp]) {
      const probe = restTarget({ url: `${gw}/${spec}/predict`, mix: spec === "sklearn" ? uniqueDigits : unique, connections: 1, isDefault: gatewayDefault });
      await waitFor(`a model answer from ${spec}`, async () => ((await probe.send(0)) === "ok" ? true : undefined), 60_000);
      probe.close();
    }

    const rest = (app: string, mix: InputMix) => (connections: number) =>
      restTarget({ url: `${gw}/${app}/predict`, mix, connections, isDefault: gatewayDefault, client: options.httpClient });
    const gateway = system.address("gateway");

    // The no-op model: our overhead, against the container alone and the edge limit.
    await bench.closed("clipper/noop-py/rest", { system: "clipper", model: "noop-py", transport: "rest", mix: "unique" }, rest("noop", unique));
    // The same path through a second gateway started with other flags, measured in this run:
    // one unary Query call per query (what the QueryStream buys), two worker processes, and the
    // router inside the gateway's process.
    // The router inside the gateway's process, against the same replica (commits before it lack services/router/config.ts).
    const inProcessRouter = existsSync(join(repoRoot, "services", "router", "config.ts"));
    const variants: Array<[string, string[]]> = [
      ["clipper-unary/noop-py/rest", ["--router", system.address("router"), "--router-calls", "unary"]],
      ["clipper-2workers/noop-py/rest", ["--router", system.address("router"), "--workers", "2"]],
      ...(inProcessRouter ? [["clipper-inprocess/noop-py/rest", ["--router", "in-process"]] as [string, string[]]] : []),
    ];
    for (const [scenario, flags] of variants) {
      if (options.only !== undefined && !options.only.test(scenario)) continue;
      const extra = await Helper.start(
        `a gateway with ${flags.join(" ")}`,
        process.execPath,
        [...(await gatewayNodeArgs()), "--host", "127.0.0.1", "--port", "0", "--registry", system.address("registry"), ...flags],
        30_000,
      );
      helpers.push(extra);
      const target = (connections: number) =>
        restTarget({ url: `http://127.0.0.1:${extra.port}/noop/predict`, mix: unique, connections, isDefault: gatewayDefault, client: options.httpClient });
      const probe = target(4);
      await waitFor(`answers through the gateway with ${flags.join(" ")}`, async () => ((await probe.send(0)) === "ok" ? true : undefined), 30_000);
      probe.close();
      await bench.closed(scenario, { system: "clipper", model: "noop-py", transport: "rest", mix: "unique" }, target);
      await extra.stop();
    }
    await bench.closed("clipper/noop-py/grpc", { system: "clipper", model: "noop-py", transport: "grpc", mix: "unique" }, () =>
      grpcGatewayTarget(gateway, "noop", unique),
    );
    const noopPy = await endpoint("noop-py");
    await bench.closed("direct/noop-py/grpc", { system: "direct", model: "noop-py", transport: "grpc", mix: "unique" }, () =>
      modelDirectTarget(noopPy, unique),
    );
    await bench.closed("clipper/noop-node/rest", { system: "clipper", model: "noop-node", transport: "rest", mix: "unique" }, rest("noop-node", unique));
    const noopNode = await endpoint("noop-node");
    await bench.closed("direct/noop-node/grpc", { system: "direct", model: "noop-node", transport: "grpc", mix: "unique" }, () =>
      modelDirectTarget(noopNode, unique),
    );
    await bench.open("clipper/noop-py/rest/open", { system: "clipper", model: "noop-py", transport: "rest", mix: "unique" }, rest("noop", unique));

    // The fixed-cost model: batch size 1 against batches up to 256.
    await bench.closed("clipper/fixed-b1/rest", { system: "clipper", model: "fixed-b1", transport: "rest", mix: "unique" }, rest("fixed-b1", unique));
    await bench.closed(
      "clipper/fixed-batched/rest",
      { system: "clipper", model: "fixed-batched", transport: "rest", mix: "unique" },
      rest("fixed-batched", unique),
    );

    // The cache: all misses, all hits, and a mix of 64 inputs repeating.
    const oneInput = repeatingMix("single", [small]);
    const sixtyFour = repeatingMix(
      "repeat-64",
      Array.from({ length: 64 }, (_, i) => small.map((v) => v + i)),
    );
    await bench.closed("clipper/cache-miss/rest", { system: "clipper", model: "fixed-b1", transport: "rest", mix: "unique" }, rest(cacheApp, unique));
    await bench.closed("clipper/cache-hit/rest", { system: "clipper", model: "fixed-b1", transport: "rest", mix: "single" }, rest(cacheApp, oneInput));
    await bench.closed("clipper/cache-mix64/rest", { system: "clipper", model: "fixed-b1", transport: "rest", mix: "repeat-64" }, rest(cacheApp, sixtyFour));

    // scikit-learn.
    await bench.closed("clipper/sklearn/rest", { system: "clipper", model: "sklearn", transport: "rest", mix: "unique" }, rest("sklearn", uniqueDigits));
    const sklearnEndpoint = await endpoint("sklearn-digits");
    await bench.closed("direct/sklearn/grpc", { system: "direct", model: "sklearn", transport: "grpc", mix: "unique" }, () =>
      modelDirectTarget(sklearnEndpoint, uniqueDigits),
    );

    // The edge limit: a bare Node HTTP server doing the same JSON work.
    if (options.only === undefined || options.only.test("edge/json-server/rest")) {
      const edge = await Helper.start("the JSON server", process.execPath, ["--import", "tsx", join(benchDir, "baselines", "json-server.ts")], 30_000);
      helpers.push(edge);
      await bench.closed("edge/json-server/rest", { system: "edge", model: "none", transport: "rest", mix: "unique" }, (c) =>
        restTarget({ url: `http://127.0.0.1:${edge.port}/noop/predict`, mix: unique, connections: c, client: options.httpClient }),
      );
      await edge.stop();
    }

    // Ray Serve, started only now so its idle processes do not share the CPU with the runs above.
    // At its defaults, as a user first meets it, and with max_ongoing_requests raised (Ray's first throughput knob).
    const rays: Array<[string, string[]]> = [
      ["ray", []],
      ["ray-tuned", ["--max-ongoing-requests", "256"]],
    ];
    for (const [name, flags] of rays) {
      if (!options.ray || (options.only !== undefined && ![`${name}/noop/rest`, `${name}/sklearn/rest`].some((s) => options.only?.test(s)))) continue;
      if (!existsSync(benchPython)) {
        bench.notes.push("Ray Serve not measured: bench/.venv is missing (bench/run.sh creates it).");
        break;
      }
      console.log(`starting Ray Serve ${flags.join(" ")}...`);
      const ray = await Helper.start(
        "Ray Serve",
        benchPython,
        [join(benchDir, "baselines", "ray_serve.py"), "--port", String(await freePort()), ...flags],
        180_000,
      );
      helpers.push(ray);
      const rayUrl = `http://127.0.0.1:${ray.port}`;
      await bench.closed(`${name}/noop/rest`, { system: "ray", model: "noop-py", transport: "rest", mix: "unique" }, (c) =>
        restTarget({ url: `${rayUrl}/noop`, mix: unique, connections: c, client: options.httpClient }),
      );
      await bench.closed(`${name}/sklearn/rest`, { system: "ray", model: "sklearn", transport: "rest", mix: "unique" }, (c) =>
        restTarget({ url: `${rayUrl}/sklearn`, mix: uniqueDigits, connections: c, client: options.httpClient }),
      );
      await ray.stop();
    }

    if (options.peers.mlserver || options.peers.triton) {
      await comparePeers(bench, helpers, {
        restBase: gw,
        grpcAddress: gateway,
        gatewayPid: system.pid("gateway") ?? 0,
        mixes: { noop: unique, sklearn: uniqueDigits, fixed: unique },
        digits,
        small,
      });
    }
  } finally {
    await stopAll();
  }

  const targets = evaluateTargets(bench.points, BATCHING_SLO_MS);
  const peers = bench.peerServers.length > 0 ? peerRatios(bench.points, bench.peerServers, options.rounds) : [];
  const results = {
    meta,
    options: { ...options, only: options.only?.source ?? null },
    notes: bench.notes,
    targets,
    peers,
    perfAnalyzer: bench.perfAnalyzer,
    points: bench.points,
  };
  writeFileSync(join(options.outDir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  const summary = renderSummary(results);
  writeFileSync(join(options.outDir, "summary.md"), summary);
  console.log(`\n${summary}`);
  if (peers.length > 0 || bench.perfAnalyzer.length > 0) {
    const perf =
      bench.perfAnalyzer.length > 0 ? `\nperf_analyzer against our OIP endpoint and Triton's:\n\n${renderPerfAnalyzerTable(bench.perfAnalyzer)}` : "";
    const table = renderPeerTable(peers) + perf;
    writeFileSync(join(options.outDir, "peers.md"), table);
    console.log(`\nOurs against each peer's best setting (OIP, means over ${options.rounds} rounds):\n${table}`);
  }
  if (existsSync(benchPython)) {
    try {
      execFileSync(benchPython, [join(benchDir, "plot.py"), join(options.outDir, "results.json"), join(options.outDir, "plots")], {
        stdio: "inherit",
        timeout: 120_000,
      });
    } catch (err) {
      console.error(`plotting failed: ${String(err)}`);
    }
  }
  console.log(`results: ${join(options.outDir, "results.json")}, ${join(options.outDir, "summary.md")}, plots in ${join(options.outDir, "plots")}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

/**
 * How the measured commit starts a gateway: from its bundle (services/build.ts),
 * or through tsx for commits before bundles (`--at` an older revision).
 */
async function gatewayNodeArgs(): Promise<string[]> {
  const build = join(repoRoot, "services", "build.ts");
  if (!existsSync(build)) return ["--import", "tsx", join(repoRoot, "services", "gateway", "main.ts")];
  const { serviceNodeArgs } = (await import(build)) as typeof import("../services/build.js");
  return serviceNodeArgs(repoRoot, "gateway");
}
