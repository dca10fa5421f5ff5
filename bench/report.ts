import type { LoadResult } from "./loadgen/loadgen.js";

/** One measured point: a scenario at one load. */
export interface Point extends LoadResult {
  scenario: string;
  /** clipper (gateway + router + container), direct (the container alone), edge (bare Node HTTP), ray. */
  system: string;
  model: string;
  transport: string;
  mix: string;
  /** CPU the load generator itself used, in cores (this machine has few). */
  loadgenCpuCores: number;
  /** Cores busy on the machine just before the point, with the benchmark idle: other people's work. */
  backgroundCpuCores: number | null;
  /** The gateway's CPU time per answer (µs), where measured (our points of the peer comparison). */
  serverCpuUsPerAnswer?: number;
}

export interface TargetVerdict {
  target: string;
  /** null when a point it needs was not measured. */
  met: boolean | null;
  detail: string;
}

export interface Results {
  meta: {
    date: string;
    commit: string;
    uncommittedServiceChanges: string;
    nproc: number;
    cpuModel: string;
    memTotalGiB: number;
    memFreeGiB: number;
    node: string;
    command: string;
  };
  options: { quick: boolean; durationMs: number; warmupMs: number; httpClient: string };
  notes: string[];
  targets: TargetVerdict[];
  points: Point[];
}

const closedAt = (points: Point[], scenario: string, concurrency: number) =>
  points.find((p) => p.scenario === scenario && p.mode === "closed" && p.concurrency === concurrency);

const fmt = (n: number, digits = 2) => n.toFixed(digits);
const rate = (n: number) => `${Math.round(n).toLocaleString("en-US")}/s`;

/** The best model-answered throughput among closed-loop points whose p99 is within `sloMs` and that answered (almost) no defaults or errors. */
function bestWithinSlo(points: Point[], scenario: string, sloMs: number): Point | undefined {
  return points
    .filter((p) => p.scenario === scenario && p.mode === "closed" && p.p99Ms <= sloMs && p.defaultRate + p.errorRate < 0.01)
    .sort((a, b) => b.goodput - a.goodput)[0];
}

function bestGoodput(points: Point[], scenario: string): Point | undefined {
  return points.filter((p) => p.scenario === scenario && p.mode === "closed").sort((a, b) => b.goodput - a.goodput)[0];
}

/** The issue's targets, each met / not met with the numbers that decide it. */
export function evaluateTargets(points: Point[], batchingSloMs: number): TargetVerdict[] {
  const verdicts: TargetVerdict[] = [];

  // The default layout (the router as its own service), then the router inside the gateway when measured.
  for (const [scenario, layout] of [
    ["clipper/noop-py/rest", ""],
    ["clipper-inprocess/noop-py/rest", " (router in-process)"],
  ] as const) {
    if (layout !== "" && !points.some((p) => p.scenario === scenario)) continue;
    verdicts.push(...throughputAndOverhead(points, scenario, layout));
  }

  const batchedAny = points.some((p) => p.scenario === "clipper/fixed-batched/rest");
  const b1 = bestWithinSlo(points, "clipper/fixed-b1/rest", batchingSloMs);
  const batched = bestWithinSlo(points, "clipper/fixed-batched/rest", batchingSloMs);
  if (!batchedAny) {
    verdicts.push({ target: "batching model: >= 5x the throughput of batch size 1 within the SLO", met: null, detail: "not measured" });
  } else if (b1 === undefined || batched === undefined) {
    verdicts.push({
      target: "batching model: >= 5x the throughput of batch size 1 within the SLO",
      met: false,
      detail: `no point of ${b1 === undefined ? "batch size 1" : "the batching model"} kept p99 within the ${batchingSloMs} ms SLO without defaults`,
    });
  } else {
    verdicts.push({
      target: "batching model: >= 5x the throughput of batch size 1 within the SLO",
      met: batched.goodput >= 5 * b1.goodput,
      detail:
        `best within the ${batchingSloMs} ms SLO: batched ${rate(batched.goodput)} (c=${batched.concurrency}, p99 ${fmt(batched.p99Ms)} ms), ` +
        `batch size 1 ${rate(b1.goodput)} (c=${b1.concurrency}, p99 ${fmt(b1.p99Ms)} ms): ${fmt(batched.goodput / b1.goodput, 1)}x`,
    });
  }

  const hits = bestGoodput(points, "clipper/cache-hit/rest");
  const misses = bestGoodput(points, "clipper/cache-miss/rest");
  if (hits === undefined || misses === undefined) {
    verdicts.push({ target: "all cache hits >= 3x all misses", met: null, detail: "not measured" });
  } else {
    verdicts.push({
      target: "all cache hits >= 3x all misses",
      met: hits.goodput >= 3 * misses.goodput,
      detail: `best: hits ${rate(hits.goodput)} (c=${hits.concurrency}), misses ${rate(misses.goodput)} (c=${misses.concurrency}): ${fmt(hits.goodput / Math.max(1e-9, misses.goodput), 1)}x`,
    });
  }
  return verdicts;
}

const verdictText = (met: boolean | null) => (met === null ? "not measured" : met ? "**met**" : "**not met**");

export function renderSummary(results: Results): string {
  const m = results.meta;
  const lines = [
    `## Run of ${m.date} at commit ${m.commit}`,
    "",
    `- Machine: ${m.nproc} cores (${m.cpuModel}), ${m.memTotalGiB} GiB RAM (${m.memFreeGiB} GiB free at start), Node ${m.node}; load generator on the same machine.`,
    `- Command: \`${m.command}\``,
    `- ${results.options.durationMs / 1000} s measured per point after ${results.options.warmupMs / 1000} s of warm-up${results.options.quick ? " (--quick)" : ""}; REST client: ${results.options.httpClient === "raw" ? "bench/loadgen/raw-http.ts (keep-alive, TCP_NODELAY)" : "node:http keep-alive agent"}; gRPC client: grpc-js via services/shared createGrpcTransport (one channel).`,
  ];
  if (m.uncommittedServiceChanges !== "")
    lines.push(`- Uncommitted changes under services/, sdk/ or test/ were in the tree: ${m.uncommittedServiceChanges.split("\n").length} files.`);
  for (const note of results.notes) lines.push(`- ${note}`);
  const contended = results.points.filter((p) => (p.backgroundCpuCores ?? 0) >= 0.25);
  if (contended.length > 0) {
    lines.push(
      `- **Shared machine**: before ${contended.length} of ${results.points.length} points other work kept >= 0.25 cores busy ("busy before" column); their numbers are pessimistic.`,
    );
  }
  lines.push("", "### Targets", "", "| target | verdict | numbers |", "|---|---|---|");
  for (const t of results.targets) lines.push(`| ${t.target} | ${verdictText(t.met)} | ${t.detail} |`);
  lines.push(
    "",
    "### All points",
    "",
    "Throughput counts answers (model or default); goodput only the model's. Latency in ms. Closed loop: c = clients; open loop: rate = requests started per second, latency from the scheduled send time.",
    "",
    "| scenario | load | throughput | goodput | p50 | p90 | p99 | p99.9 | default | errors | loadgen CPU | busy before |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const p of results.points) {
    const load = p.mode === "closed" ? `c=${p.concurrency}` : `${p.targetRate}/s open`;
    lines.push(
      `| ${p.scenario} | ${load} | ${rate(p.throughput)} | ${rate(p.goodput)} | ${fmt(p.p50Ms)} | ${fmt(p.p90Ms)} | ${fmt(p.p99Ms)} | ${fmt(p.p999Ms)} | ` +
        `${fmt(p.defaultRate * 100, 1)}% | ${fmt(p.errorRate * 100, 1)}% | ${fmt(p.loadgenCpuCores)} | ${p.backgroundCpuCores === null ? "?" : fmt(p.backgroundCpuCores)} |`,
    );
  }
  const errors = results.points.filter((p) => p.firstError !== null);
  if (errors.length > 0) {
    lines.push("", "First error per point with errors:", "");
    for (const p of errors) lines.push(`- ${p.scenario} ${p.mode === "closed" ? `c=${p.concurrency}` : `${p.targetRate}/s`}: ${p.firstError}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The first two targets for one layout of the system: throughput at 64 clients, and what the path adds at one. */
function throughputAndOverhead(points: Point[], scenario: string, layout: string): TargetVerdict[] {
  const verdicts: TargetVerdict[] = [];
  const noop = closedAt(points, scenario, 64);
  // The better of Ray Serve at its defaults and with max_ongoing_requests raised: the fair peer.
  const rays = [closedAt(points, "ray/noop/rest", 64), closedAt(points, "ray-tuned/noop/rest", 64)].filter((p): p is Point => p !== undefined);
  const ray = rays.sort((a, b) => b.goodput - a.goodput)[0];
  if (noop === undefined) {
    verdicts.push({
      target: `no-op over REST at c=64: >= 10,000/s, p99 <= 20 ms, >= 20x Ray Serve with lower p99${layout}`,
      met: null,
      detail: "not measured",
    });
  } else {
    const fast = noop.goodput >= 10_000 && noop.p99Ms <= 20;
    const vsRay = ray === undefined ? null : noop.goodput >= 20 * ray.goodput && noop.p99Ms < ray.p99Ms;
    const rayText =
      ray === undefined
        ? "Ray Serve not measured"
        : `Ray Serve (${ray.scenario.split("/")[0]}) ${rate(ray.goodput)}, p99 ${fmt(ray.p99Ms)} ms: ${fmt(noop.goodput / Math.max(1e-9, ray.goodput), 1)}x`;
    verdicts.push({
      target: `no-op over REST at c=64: >= 10,000/s, p99 <= 20 ms, >= 20x Ray Serve with lower p99${layout}`,
      met: vsRay === null ? (fast ? null : false) : fast && vsRay,
      detail: `Clipper ${rate(noop.goodput)}, p99 ${fmt(noop.p99Ms)} ms; ${rayText}`,
    });
  }

  const viaGateway = closedAt(points, scenario, 1);
  const direct = closedAt(points, "direct/noop-py/grpc", 1);
  const viaGrpc = layout === "" ? closedAt(points, "clipper/noop-py/grpc", 1) : undefined;
  if (viaGateway === undefined || direct === undefined) {
    verdicts.push({ target: `c=1: gateway + router add <= 0.3 ms to the container's p50${layout}`, met: null, detail: "not measured" });
  } else {
    const added = viaGateway.p50Ms - direct.p50Ms;
    const grpcText = viaGrpc === undefined ? "" : `; over gRPC to the gateway p50 ${fmt(viaGrpc.p50Ms)} ms (+${fmt(viaGrpc.p50Ms - direct.p50Ms)} ms)`;
    verdicts.push({
      target: `c=1: gateway + router add <= 0.3 ms to the container's p50${layout}`,
      met: added <= 0.3,
      detail: `REST p50 ${fmt(viaGateway.p50Ms)} ms, container direct p50 ${fmt(direct.p50Ms)} ms: ${added >= 0 ? "+" : ""}${fmt(added)} ms${grpcText}`,
    });
  }
  return verdicts;
}
