import { performance } from "node:perf_hooks";
import { LatencyHistogram } from "./histogram.js";

/** How one request ended: answered by the model, answered with the app's default, or failed. */
export type Outcome = "ok" | "default";

/** Sends request number `sequence`; resolves with its outcome, rejects on any failure (counted as an error). */
export type SendFn = (sequence: number) => Promise<Outcome>;

interface CommonOptions {
  send: SendFn;
  /** Measured time, after the warm-up. */
  durationMs: number;
  /** Requests started during the warm-up are sent but not counted. */
  warmupMs: number;
  /** A hard bound on requests sent, warm-up included. */
  maxRequests?: number;
  /** How long to wait for requests still in flight at the end before counting them as errors. */
  drainTimeoutMs?: number;
}

export interface ClosedLoopOptions extends CommonOptions {
  /** Clients, each sending its next request when its previous one is answered. */
  concurrency: number;
}

export interface OpenLoopOptions extends CommonOptions {
  /** Requests started per second, on a fixed schedule that does not wait for answers. */
  ratePerSecond: number;
  /** Requests allowed in flight at once; a request due beyond it is not sent and counts as dropped. */
  maxInFlight: number;
}

export interface LoadResult {
  mode: "closed" | "open";
  concurrency: number | null;
  targetRate: number | null;
  durationS: number;
  /** Requests counted (started after the warm-up), answered or not. */
  requests: number;
  ok: number;
  defaults: number;
  errors: number;
  /** Open loop only: due requests not sent because maxInFlight were already in flight. */
  dropped: number;
  /** Answers (model or default) per second. */
  throughput: number;
  /** Model answers (not default, not failed) per second. */
  goodput: number;
  defaultRate: number;
  errorRate: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
  firstError: string | null;
}

const DEFAULT_MAX_REQUESTS = 5_000_000;
const DEFAULT_DRAIN_MS = 10_000;

/** Counts the measured requests; latency is whatever the driver says it was. */
class Tally {
  readonly histogram = new LatencyHistogram();
  requests = 0;
  ok = 0;
  defaults = 0;
  errors = 0;
  dropped = 0;
  firstError: string | null = null;

  answered(outcome: Outcome, latencyMs: number): void {
    this.histogram.record(latencyMs * 1000);
    if (outcome === "ok") this.ok++;
    else this.defaults++;
  }

  failed(err: unknown): void {
    this.errors++;
    this.firstError ??= err instanceof Error ? err.message : String(err);
  }

  result(mode: "closed" | "open", durationMs: number, concurrency: number | null, targetRate: number | null): LoadResult {
    const h = this.histogram;
    const seconds = durationMs / 1000;
    const denominator = Math.max(1, this.requests);
    return {
      mode,
      concurrency,
      targetRate,
      durationS: seconds,
      requests: this.requests,
      ok: this.ok,
      defaults: this.defaults,
      errors: this.errors,
      dropped: this.dropped,
      throughput: (this.ok + this.defaults) / seconds,
      goodput: this.ok / seconds,
      defaultRate: this.defaults / denominator,
      errorRate: (this.errors + this.dropped) / denominator,
      p50Ms: h.quantile(0.5) / 1000,
      p90Ms: h.quantile(0.9) / 1000,
      p99Ms: h.quantile(0.99) / 1000,
      p999Ms: h.quantile(0.999) / 1000,
      maxMs: h.max / 1000,
      meanMs: h.meanMicros / 1000,
      firstError: this.firstError,
    };
  }
}

/** Waits for `pending` to settle, at most `timeoutMs`; returns how many were still unsettled. */
async function drain(pending: Set<Promise<void>>, timeoutMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([Promise.allSettled([...pending]), timeout]);
  clearTimeout(timer);
  return pending.size;
}

/**
 * N clients in a loop, each sending its next request as soon as its previous
 * one is answered. Latency is from send to answer. Throughput is what the
 * system sustains at this concurrency; latency under a closed loop understates
 * queueing (coordinated omission), so use the open loop to judge latency.
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<LoadResult> {
  if (!(options.concurrency >= 1)) throw new Error("concurrency must be at least 1");
  const tally = new Tally();
  const maxRequests = options.maxRequests ?? DEFAULT_MAX_REQUESTS;
  const start = performance.now();
  const measureFrom = start + options.warmupMs;
  const end = measureFrom + options.durationMs;
  let sequence = 0;
  let unfinished = 0;

  const client = async (): Promise<void> => {
    while (sequence < maxRequests) {
      const sentAt = performance.now();
      if (sentAt >= end) return;
      const measured = sentAt >= measureFrom;
      if (measured) tally.requests++;
      unfinished++;
      try {
        const outcome = await options.send(sequence++);
        if (measured) tally.answered(outcome, performance.now() - sentAt);
      } catch (err) {
        if (measured) tally.failed(err);
      } finally {
        unfinished--;
      }
    }
  };
  const clients = new Set<Promise<void>>();
  for (let i = 0; i < options.concurrency; i++) {
    const p: Promise<void> = client().finally(() => clients.delete(p));
    clients.add(p);
  }
  const stuck = await drain(clients, end - performance.now() + (options.drainTimeoutMs ?? DEFAULT_DRAIN_MS));
  if (stuck > 0) {
    tally.errors += unfinished;
    tally.firstError ??= `${unfinished} requests unanswered after the drain timeout`;
  }
  const measuredMs = Math.max(1, Math.min(performance.now(), end) - measureFrom);
  return tally.result("closed", measuredMs, options.concurrency, null);
}

/**
 * Requests started on a fixed schedule (request i is due at start + i/rate),
 * whatever the answers do. Latency is measured from the scheduled time, not
 * the actual send, so a stalled system or a late timer shows up as latency
 * instead of silently lowering the load (no coordinated omission).
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<LoadResult> {
  if (!(options.ratePerSecond > 0)) throw new Error("ratePerSecond must be positive");
  if (!(options.maxInFlight >= 1)) throw new Error("maxInFlight must be at least 1");
  const tally = new Tally();
  const maxRequests = options.maxRequests ?? DEFAULT_MAX_REQUESTS;
  const intervalMs = 1000 / options.ratePerSecond;
  const start = performance.now();
  const measureFrom = start + options.warmupMs;
  const end = measureFrom + options.durationMs;
  const inFlight = new Set<Promise<void>>();

  const sendOne = (sequence: number, scheduledAt: number) => {
    const measured = scheduledAt >= measureFrom;
    if (measured) tally.requests++;
    if (inFlight.size >= options.maxInFlight) {
      if (measured) tally.dropped++;
      return;
    }
    const p: Promise<void> = options
      .send(sequence)
      .then(
        (outcome) => {
          if (measured) tally.answered(outcome, performance.now() - scheduledAt);
        },
        (err: unknown) => {
          if (measured) tally.failed(err);
        },
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  await new Promise<void>((resolve) => {
    let next = 0;
    const tick = () => {
      const now = performance.now();
      while (next < maxRequests) {
        const due = start + next * intervalMs;
        if (due > now || due >= end) break;
        sendOne(next++, due);
      }
      const nextDue = start + next * intervalMs;
      if (next >= maxRequests || nextDue >= end) return resolve();
      // Timers are coarse (about 1 ms); late sends are charged to latency above.
      setTimeout(tick, Math.max(0, Math.min(nextDue - performance.now(), 50)));
    };
    tick();
  });
  const stuck = await drain(inFlight, options.drainTimeoutMs ?? DEFAULT_DRAIN_MS);
  if (stuck > 0) {
    tally.errors += stuck;
    tally.firstError ??= `${stuck} requests unanswered after the drain timeout`;
  }
  return tally.result("open", options.durationMs, null, options.ratePerSecond);
}
