/**
 * From the services' own Prometheus series to the numbers the console draws:
 * each scrape is reduced to a small digest of the counters it needs, and a
 * frame is the difference between the newest digest and one a window
 * earlier (rates, fractions, histogram quantiles as PromQL computes them).
 * Pure: no clock, no I/O.
 */
import type { ApplicationFrame, FeedbackLossJson, MetricsFrame, ModelFrame, TargetStatus } from "./console-api.js";
import type { Sample } from "./prometheus-text.js";

interface Totals {
  total: number;
  part: number;
}

/** The counters and gauges of one scrape (of every target), aggregated to what a frame needs. */
export interface ScrapeDigest {
  atMs: number;
  /** Router queries by application: all, and those answered with the default. */
  appQueries: Map<string, Totals>;
  /** Router query duration buckets by application: upper bound to cumulative count, summed over model versions. */
  appLatencyBuckets: Map<string, Map<number, number>>;
  /** Gateway requests by application: all, and those that failed. */
  appRequests: Map<string, Totals>;
  /** Batch size histograms by "model:version": sum of inputs (total) and count of batches (part). */
  batches: Map<string, Totals>;
  queueDepth: Map<string, number>;
  /** In-flight batches by "model:version" then replica endpoint. */
  inFlight: Map<string, Map<string, number>>;
  /** hits (part) of lookups (total); undefined when no target has a cache. */
  cache: Totals | undefined;
  /** Feedback loss by application then model: sum of losses (total) and outputs judged (part). */
  feedbackLoss: Map<string, Map<string, Totals>>;
}

const modelKeyOf = (labels: Readonly<Record<string, string>>) => `${labels.model ?? "none"}:${labels.version ?? "none"}`;

function add(map: Map<string, Totals>, key: string, total: number, part: number): void {
  const t = map.get(key) ?? { total: 0, part: 0 };
  t.total += total;
  t.part += part;
  map.set(key, t);
}

export function digestScrape(samples: readonly Sample[], atMs: number): ScrapeDigest {
  const d: ScrapeDigest = {
    atMs,
    appQueries: new Map(),
    appLatencyBuckets: new Map(),
    appRequests: new Map(),
    batches: new Map(),
    queueDepth: new Map(),
    inFlight: new Map(),
    cache: undefined,
    feedbackLoss: new Map(),
  };
  const lossOf = (labels: Readonly<Record<string, string>>) => {
    const app = labels.application ?? "unknown";
    const models = d.feedbackLoss.get(app) ?? new Map<string, Totals>();
    d.feedbackLoss.set(app, models);
    return models;
  };
  let hits: number | undefined;
  let misses: number | undefined;
  for (const s of samples) {
    const l = s.labels;
    switch (s.name) {
      case "clipper_router_queries_total":
        add(d.appQueries, l.application ?? "unknown", s.value, l.outcome === "default" ? s.value : 0);
        break;
      case "clipper_router_query_duration_seconds_bucket": {
        const le = l.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(l.le);
        if (Number.isNaN(le)) break;
        const app = l.application ?? "unknown";
        const buckets = d.appLatencyBuckets.get(app) ?? new Map<number, number>();
        buckets.set(le, (buckets.get(le) ?? 0) + s.value);
        d.appLatencyBuckets.set(app, buckets);
        break;
      }
      case "clipper_gateway_requests_total":
        add(d.appRequests, l.application ?? "unknown", s.value, l.outcome === "error" ? s.value : 0);
        break;
      case "clipper_router_batch_size_sum":
        add(d.batches, modelKeyOf(l), s.value, 0);
        break;
      case "clipper_router_batch_size_count":
        add(d.batches, modelKeyOf(l), 0, s.value);
        break;
      case "clipper_router_queue_depth":
        d.queueDepth.set(modelKeyOf(l), (d.queueDepth.get(modelKeyOf(l)) ?? 0) + s.value);
        break;
      case "clipper_router_inflight_batches": {
        const key = modelKeyOf(l);
        const replicas = d.inFlight.get(key) ?? new Map<string, number>();
        const endpoint = l.replica ?? "";
        replicas.set(endpoint, (replicas.get(endpoint) ?? 0) + s.value);
        d.inFlight.set(key, replicas);
        break;
      }
      case "clipper_router_feedback_loss_sum":
        add(lossOf(l), l.model ?? "none", s.value, 0);
        break;
      case "clipper_router_feedback_loss_count":
        add(lossOf(l), l.model ?? "none", 0, s.value);
        break;
      case "clipper_router_cache_hits_total":
        hits = (hits ?? 0) + s.value;
        break;
      case "clipper_router_cache_misses_total":
        misses = (misses ?? 0) + s.value;
        break;
    }
  }
  if (hits !== undefined || misses !== undefined) d.cache = { total: (hits ?? 0) + (misses ?? 0), part: hits ?? 0 };
  return d;
}

/** How much a counter grew; a counter that went down was reset (its service restarted), so all of it is new. */
export function counterIncrease(before: number | undefined, after: number): number {
  if (before === undefined || after < before) return after;
  return after - before;
}

function totalsIncrease(before: Totals | undefined, after: Totals): Totals {
  const reset = before !== undefined && (after.total < before.total || after.part < before.part);
  const base = reset ? undefined : before;
  return { total: counterIncrease(base?.total, after.total), part: counterIncrease(base?.part, after.part) };
}

/**
 * The q-quantile of a histogram's cumulative buckets (upper bound to count),
 * as PromQL's histogram_quantile: linear within the bucket holding the rank,
 * the highest finite bound when the rank falls in +Inf. Null without observations.
 */
export function histogramQuantile(q: number, cumulative: ReadonlyMap<number, number>): number | null {
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  const top = bounds.at(-1);
  if (top === undefined) return null;
  const total = cumulative.get(top) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const bound of bounds) {
    const count = cumulative.get(bound) ?? 0;
    if (count >= rank) {
      if (bound === Number.POSITIVE_INFINITY) return lowerBound;
      if (count === lowerCount) return bound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

/** Bucket by bucket increase between two scrapes (a reset in any bucket takes the newer counts whole). */
export function bucketIncrease(before: ReadonlyMap<number, number> | undefined, after: ReadonlyMap<number, number>): Map<number, number> {
  const reset = before !== undefined && [...after].some(([le, n]) => n < (before.get(le) ?? 0));
  const out = new Map<number, number>();
  for (const [le, n] of after) out.set(le, reset ? n : counterIncrease(before?.get(le), n));
  return out;
}

const fraction = (t: Totals): number | null => (t.total > 0 ? t.part / t.total : null);
/** Sum of losses (total) over outputs judged (part). */
const meanLoss = (t: Totals): number | null => (t.part > 0 ? t.total / t.part : null);

function feedbackLossFrame(older: ScrapeDigest | undefined, newer: ScrapeDigest): MetricsFrame["feedbackLoss"] {
  const out: MetricsFrame["feedbackLoss"] = {};
  for (const [app, models] of newer.feedbackLoss) {
    const byModel: Record<string, FeedbackLossJson> = {};
    for (const [model, now] of models) {
      const grown = older === undefined ? undefined : totalsIncrease(older.feedbackLoss.get(app)?.get(model), now);
      byModel[model] = { recent: grown === undefined ? null : meanLoss(grown), overall: meanLoss(now), count: now.part };
    }
    out[app] = byModel;
  }
  return out;
}

/**
 * The frame between two digests. Without `older` (the first scrape) every
 * rate is 0 and every fraction null: counters since a service started say
 * nothing about now.
 */
export function computeFrame(
  older: ScrapeDigest | undefined,
  newer: ScrapeDigest,
  targets: readonly TargetStatus[],
  policies: MetricsFrame["policies"] = {},
): MetricsFrame {
  const seconds = older === undefined ? 0 : (newer.atMs - older.atMs) / 1000;
  const applications: Record<string, ApplicationFrame> = {};
  const apps = new Set([...newer.appQueries.keys(), ...newer.appRequests.keys(), ...newer.appLatencyBuckets.keys()]);
  for (const app of apps) {
    if (older === undefined || seconds <= 0) {
      applications[app] = { throughput: 0, p50: null, p99: null, defaultRate: null, errorRate: null };
      continue;
    }
    const queries = totalsIncrease(older.appQueries.get(app), newer.appQueries.get(app) ?? { total: 0, part: 0 });
    const requests = totalsIncrease(older.appRequests.get(app), newer.appRequests.get(app) ?? { total: 0, part: 0 });
    const latency = bucketIncrease(older.appLatencyBuckets.get(app), newer.appLatencyBuckets.get(app) ?? new Map());
    applications[app] = {
      throughput: queries.total / seconds,
      p50: histogramQuantile(0.5, latency),
      p99: histogramQuantile(0.99, latency),
      defaultRate: fraction(queries),
      errorRate: fraction(requests),
    };
  }
  const models: Record<string, ModelFrame> = {};
  const keys = new Set([...newer.batches.keys(), ...newer.queueDepth.keys(), ...newer.inFlight.keys()]);
  for (const key of keys) {
    const now = newer.batches.get(key);
    const grown = now === undefined || older === undefined || seconds <= 0 ? undefined : totalsIncrease(older.batches.get(key), now);
    models[key] = {
      meanBatchSize: grown === undefined || grown.part === 0 ? null : grown.total / grown.part,
      batchesPerSecond: grown === undefined ? 0 : grown.part / seconds,
      queueDepth: newer.queueDepth.get(key) ?? null,
      inFlightBatches: Object.fromEntries(newer.inFlight.get(key) ?? []),
    };
  }
  let cacheHitRatio: number | null = null;
  if (newer.cache !== undefined && older !== undefined) cacheHitRatio = fraction(totalsIncrease(older.cache, newer.cache));
  return { atMs: newer.atMs, applications, models, cacheHitRatio, policies, feedbackLoss: feedbackLossFrame(older, newer), targets: [...targets] };
}
