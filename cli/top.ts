// `clipper top`: live throughput, latency percentiles, batch sizes and cache hit ratio,
// computed from the gateway's and the router's /metrics (Prometheus text).
import { setTimeout as sleep } from "node:timers/promises";
import { formatTable, type Output } from "./output.js";

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text exposition (comments and malformed lines are skipped). */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    const value = m[3] === "+Inf" ? Number.POSITIVE_INFINITY : m[3] === "-Inf" ? Number.NEGATIVE_INFINITY : Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1] as string, labels, value });
  }
  return out;
}

/** A scrape of both services at one moment. */
export interface Scrape {
  atMs: number;
  gateway: Sample[];
  router: Sample[];
}

/** A cumulative histogram: bucket upper bounds with counts, plus sum and count. */
interface Histogram {
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

export interface AppRow {
  application: string;
  requestsPerSecond: number;
  p50Seconds: number | undefined;
  p99Seconds: number | undefined;
  defaultRatio: number | undefined;
}

export interface ModelRow {
  application: string;
  model: string;
  queriesPerSecond: number;
  p50Seconds: number | undefined;
  p99Seconds: number | undefined;
  cacheHitRatio: number | undefined;
  meanBatchSize: number | undefined;
  p99BatchSize: number | undefined;
}

export interface TopView {
  /** Seconds the rates cover; undefined on the first scrape, whose numbers are totals since start. */
  windowSeconds: number | undefined;
  apps: AppRow[];
  models: ModelRow[];
}

/** Sums the samples of `name` by the key `keyOf` gives (undefined: skipped). */
function sumBy(samples: Sample[], name: string, keyOf: (labels: Record<string, string>) => string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name) continue;
    const key = keyOf(s.labels);
    if (key !== undefined) out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

function histogramsBy(samples: Sample[], name: string, keyOf: (labels: Record<string, string>) => string | undefined): Map<string, Histogram> {
  const out = new Map<string, Histogram>();
  const get = (key: string) => {
    let h = out.get(key);
    if (h === undefined) {
      h = { buckets: new Map(), sum: 0, count: 0 };
      out.set(key, h);
    }
    return h;
  };
  for (const s of samples) {
    const key = s.name.startsWith(name) ? keyOf(s.labels) : undefined;
    if (key === undefined) continue;
    if (s.name === `${name}_bucket`) {
      const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      const h = get(key);
      h.buckets.set(le, (h.buckets.get(le) ?? 0) + s.value);
    } else if (s.name === `${name}_sum`) get(key).sum += s.value;
    else if (s.name === `${name}_count`) get(key).count += s.value;
  }
  return out;
}

function minus(cur: Histogram, prev: Histogram | undefined): Histogram {
  if (prev === undefined) return cur;
  const buckets = new Map<number, number>();
  for (const [le, n] of cur.buckets) buckets.set(le, n - (prev.buckets.get(le) ?? 0));
  return { buckets, sum: cur.sum - prev.sum, count: cur.count - prev.count };
}

/**
 * The q-quantile of a cumulative histogram, interpolated linearly inside its
 * bucket as Prometheus's histogram_quantile does; undefined when empty.
 */
export function quantile(h: Histogram, q: number): number | undefined {
  if (h.count <= 0) return undefined;
  const bounds = [...h.buckets.keys()].sort((a, b) => a - b);
  const rank = q * h.count;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const cumulative = h.buckets.get(le) ?? 0;
    if (cumulative >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lower;
      const inBucket = cumulative - below;
      return inBucket <= 0 ? le : lower + ((le - lower) * (rank - below)) / inBucket;
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

const appKey = (l: Record<string, string>) => l.application;
const modelKey = (l: Record<string, string>) => (l.application === undefined ? undefined : `${l.application}\t${l.model ?? "none"}:${l.version ?? "none"}`);
const versionKey = (l: Record<string, string>) => `${l.model ?? "none"}:${l.version ?? "none"}`;

/** Rates and percentiles between two scrapes (or totals since start when there is no previous one). */
export function computeTop(cur: Scrape, prev: Scrape | undefined): TopView {
  const windowSeconds = prev === undefined ? undefined : Math.max(1e-3, (cur.atMs - prev.atMs) / 1000);
  const per = (n: number) => (windowSeconds === undefined ? n : n / windowSeconds);
  const delta = (curMap: Map<string, number>, prevMap: Map<string, number> | undefined, key: string) => (curMap.get(key) ?? 0) - (prevMap?.get(key) ?? 0);

  const reqName = "clipper_gateway_requests_total";
  const requests = sumBy(cur.gateway, reqName, appKey);
  const prevRequests = prev && sumBy(prev.gateway, reqName, appKey);
  const defaults = sumBy(cur.gateway, reqName, (l) => (l.outcome === "default" ? l.application : undefined));
  const prevDefaults = prev && sumBy(prev.gateway, reqName, (l) => (l.outcome === "default" ? l.application : undefined));
  const latency = histogramsBy(cur.gateway, "clipper_gateway_request_duration_seconds", appKey);
  const prevLatency = prev && histogramsBy(prev.gateway, "clipper_gateway_request_duration_seconds", appKey);
  const apps: AppRow[] = [...requests.keys()].sort().map((application) => {
    const n = delta(requests, prevRequests, application);
    const h = minus(latency.get(application) ?? { buckets: new Map(), sum: 0, count: 0 }, prevLatency?.get(application));
    return {
      application,
      requestsPerSecond: per(n),
      p50Seconds: quantile(h, 0.5),
      p99Seconds: quantile(h, 0.99),
      defaultRatio: n > 0 ? delta(defaults, prevDefaults, application) / n : undefined,
    };
  });

  const qName = "clipper_router_queries_total";
  const queries = sumBy(cur.router, qName, modelKey);
  const prevQueries = prev && sumBy(prev.router, qName, modelKey);
  const cachedOf = (s: Sample[]) => sumBy(s, qName, (l) => (l.reason === "cached" ? modelKey(l) : undefined));
  const answeredOf = (s: Sample[]) => sumBy(s, qName, (l) => (l.outcome === "answered" ? modelKey(l) : undefined));
  const cached = cachedOf(cur.router);
  const prevCached = prev && cachedOf(prev.router);
  const answered = answeredOf(cur.router);
  const prevAnswered = prev && answeredOf(prev.router);
  const qLatency = histogramsBy(cur.router, "clipper_router_query_duration_seconds", modelKey);
  const prevQLatency = prev && histogramsBy(prev.router, "clipper_router_query_duration_seconds", modelKey);
  const batches = histogramsBy(cur.router, "clipper_router_batch_size", versionKey);
  const prevBatches = prev && histogramsBy(prev.router, "clipper_router_batch_size", versionKey);
  const models: ModelRow[] = [...queries.keys()].sort().map((key) => {
    const [application = "", model = ""] = key.split("\t");
    const h = minus(qLatency.get(key) ?? { buckets: new Map(), sum: 0, count: 0 }, prevQLatency?.get(key));
    const b = minus(batches.get(model) ?? { buckets: new Map(), sum: 0, count: 0 }, prevBatches?.get(model));
    const answeredN = delta(answered, prevAnswered, key);
    return {
      application,
      model,
      queriesPerSecond: per(delta(queries, prevQueries, key)),
      p50Seconds: quantile(h, 0.5),
      p99Seconds: quantile(h, 0.99),
      cacheHitRatio: answeredN > 0 ? delta(cached, prevCached, key) / answeredN : undefined,
      meanBatchSize: b.count > 0 ? b.sum / b.count : undefined,
      p99BatchSize: quantile(b, 0.99),
    };
  });
  return { windowSeconds, apps, models };
}

const ms = (s: number | undefined) => (s === undefined ? "-" : `${(s * 1000).toFixed(1)}ms`);
const pct = (r: number | undefined) => (r === undefined ? "-" : `${(r * 100).toFixed(1)}%`);
const num = (n: number | undefined, digits = 1) => (n === undefined ? "-" : n.toFixed(digits));

export function renderTop(view: TopView): string {
  const rate = view.windowSeconds === undefined ? "total" : "req/s";
  const qrate = view.windowSeconds === undefined ? "total" : "queries/s";
  const title =
    view.windowSeconds === undefined
      ? "clipper top: totals since the services started (rates from the next refresh)\n\n"
      : `clipper top: last ${view.windowSeconds.toFixed(1)} s\n\n`;
  const apps =
    view.apps.length === 0
      ? "no requests at the gateway yet\n"
      : formatTable(
          ["APPLICATION", rate, "p50", "p99", "defaults"],
          view.apps.map((a) => [a.application, num(a.requestsPerSecond), ms(a.p50Seconds), ms(a.p99Seconds), pct(a.defaultRatio)]),
        );
  const models =
    view.models.length === 0
      ? "no queries at the router yet\n"
      : formatTable(
          ["APPLICATION", "MODEL", qrate, "p50", "p99", "cache hits", "batch mean", "batch p99"],
          view.models.map((m) => [
            m.application,
            m.model,
            num(m.queriesPerSecond),
            ms(m.p50Seconds),
            ms(m.p99Seconds),
            pct(m.cacheHitRatio),
            num(m.meanBatchSize),
            num(m.p99BatchSize),
          ]),
        );
  return `${title}${apps}\n${models}`;
}

export interface TopOptions {
  /** http://host:port/metrics of the gateway and of the router. */
  gatewayMetricsUrl: string;
  routerMetricsUrl: string;
  /** Refreshes before returning; undefined: until `signal` aborts. */
  iterations: number | undefined;
  intervalMs: number;
  fetch: typeof fetch;
  out: Output;
  signal?: AbortSignal;
  now?: () => number;
}

async function scrapeText(fetchFn: typeof fetch, url: string): Promise<Sample[]> {
  const res = await fetchFn(url, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  return parsePrometheusText(await res.text());
}

/** Scrapes both services every interval and redraws the view (in place on a terminal). */
export async function runTop(options: TopOptions): Promise<void> {
  const now = options.now ?? Date.now;
  let prev: Scrape | undefined;
  for (let i = 0; options.iterations === undefined || i < options.iterations; i++) {
    if (i > 0) await sleep(options.intervalMs, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
    if (options.signal?.aborted) return;
    let text: string;
    try {
      const [gateway, router] = await Promise.all([scrapeText(options.fetch, options.gatewayMetricsUrl), scrapeText(options.fetch, options.routerMetricsUrl)]);
      const cur: Scrape = { atMs: now(), gateway, router };
      text = renderTop(computeTop(cur, prev));
      prev = cur;
    } catch (err) {
      text = `clipper top: cannot scrape metrics: ${err instanceof Error ? err.message : String(err)}\n`;
    }
    options.out.write(options.out.isTTY ? `\x1b[H\x1b[2J${text}` : `${text}\n`);
  }
}
