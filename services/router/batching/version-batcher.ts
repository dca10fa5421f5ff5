import type { Clock } from "../clock.js";
import { BatchQueue, type QueueNode, type TakeOrder } from "./batch-queue.js";
import { BatchSizer, type BatchSizerOptions, defaultBatchSizerOptions } from "./batch-sizer.js";

/** A query as the batcher sees it. The batcher maintains `queued`, `inFlight` and `attempts`. */
export interface BatchItem {
  /** Clock ms after which the query is answered with the default and never sent. */
  readonly deadline: number;
  /** Answered already: skipped when a batch returns, never retried. */
  settled: boolean;
  queued: QueueNode<unknown> | undefined;
  inFlight: Dispatch<unknown> | undefined;
  /** Batches it has been sent in (a failed replica's queries are retried elsewhere). */
  attempts: number;
}

/** One batch sent to one replica. */
export interface Dispatch<T> {
  readonly id: number;
  readonly replica: string;
  /** In the order taken from the queue; outputs map to them by position. */
  readonly items: readonly T[];
  /** Inputs to send: the items, then the last one repeated (fixed-size mode only). */
  readonly padTo: number;
  readonly sentAt: number;
  /** Time from sending to the tightest deadline in the batch. */
  readonly budgetMs: number;
  /** Time from sending to the latest deadline in the batch: the model call's timeout. */
  readonly timeoutMs: number;
  /** The replica's predicted p99 for this batch, when its latency model has one. */
  readonly predictedMs: number | undefined;
  /** Aborted when no query of the batch is waiting for it any more. */
  readonly controller: AbortController;
  /** Items still waiting for this batch. */
  live: number;
}

/** Per-model-version knobs, from the registry's BatchingConfig and Model.max_batch_size. */
export interface BatcherSettings {
  /** 0: no limit (up to the sizer's hard maximum). */
  maxBatchSize: number;
  /** Send exactly maxBatchSize inputs per batch (the last query repeated to fill). */
  fixedSize: boolean;
  /** Longest hold to fill a batch; undefined: chosen automatically; 0: never. */
  maxWaitMs: number | undefined;
  maxInFlightPerReplica: number;
  maxQueueLength: number;
}

export type DispatchOutcome = { kind: "ok" } | { kind: "abandoned" } | { kind: "failed"; retryable: boolean };

/** Where the batcher's decisions go: the batches to send, and the queued queries it gave up on. */
export interface BatcherOutput<T> {
  /** Sends a batch; the caller reports back with `finished`. */
  send(dispatch: Dispatch<T>): void;
  /**
   * Queries taken out of the queue because they can no longer be answered in
   * time (their deadline comes before a batch sent now would return) though
   * they could have been when they arrived: the queue ahead made them late.
   * The caller answers them at once; they cost no model time.
   */
  hopeless(items: readonly T[]): void;
}

/** Why a request should not be queued: what the queue ahead of it makes it wait. */
export interface LateAdmission {
  /** Predicted time from now to its last query's answer. */
  predictedMs: number;
  /** Queries queued or in flight ahead of it. */
  ahead: number;
}

export interface VersionBatcherOptions {
  clock: Clock;
  sizer: BatchSizerOptions;
  /** A replica that failed a batch is used only when no other can take work, for this long. */
  failureCooldownMs: number;
  /** A replica whose in-flight batch is older than lagFactor × its predicted latency + lagSlackMs gets no more work until it answers. */
  lagFactor: number;
  lagSlackMs: number;
  /**
   * An idle replica whose latency estimate is older than this ranks as
   * unmeasured, so it takes the next batch and refreshes the estimate: one
   * slow warm-up batch must not starve a replica for good.
   */
  staleEstimateMs: number;
  /** Batches one query may be sent in (the first try and retries on other replicas). */
  maxAttempts: number;
  /** Automatic wait window: only for models whose fitted fixed cost per batch is at least this (ms)... */
  autoWaitMinFixedCostMs: number;
  /** ...and never longer than this (ms). */
  autoWaitMaxMs: number;
  /**
   * Which end of the queue is served while it is overloaded (its oldest query has waited more than
   * `overloadSojournFraction` of its budget): "earliest" keeps earliest-deadline-first, "latest" serves
   * the latest deadline first (last come, first served for one SLO), so that the model works on queries
   * with time to spare and the old ones take the default at their deadline instead of dragging every
   * answer past it (earliest-deadline-first's domino effect).
   */
  overloadOrder: TakeOrder;
  overloadSojournFraction: number;
}

export const defaultVersionBatcherOptions: Omit<VersionBatcherOptions, "clock"> = {
  sizer: defaultBatchSizerOptions,
  failureCooldownMs: 1000,
  lagFactor: 3,
  lagSlackMs: 10,
  staleEstimateMs: 250,
  maxAttempts: 3,
  autoWaitMinFixedCostMs: 1,
  autoWaitMaxMs: 5,
  overloadOrder: "latest",
  overloadSojournFraction: 0.5,
};

/** How long before a replica's batch in flight is expected back its next batch is sent, as a fraction of that batch's latency. */
const PIPELINE_LEAD_FRACTION = 0.25;

/**
 * What admission counts of the rate a replica's latency line gives at full batches: the line does not see a batch's
 * dispatch and delivery, nor the batches that leave part full, and what is admitted at the edge of it must still be
 * answered in time (query-processor.test.ts: a burst into a 20 ms SLO; without the headroom 9 of 26 admitted missed).
 */
const FULL_BATCH_RATE_HEADROOM = 0.9;

/** Busy time (ms) a replica's throughput is measured over before admission trusts it. */
const MIN_MEASURED_BUSY_MS = 20;

/** Far above any latency: a replica in failure cooldown ranks after every healthy one. */
const COOLDOWN_PENALTY = 1e9;

class ReplicaState {
  readonly inFlight = new Set<Dispatch<unknown>>();
  /** Queries in the batches in flight. */
  inFlightItems = 0;
  /**
   * Decaying sums (half-life about a second of busy time) of the queries it
   * answered and of the time it had at least one batch in flight: their ratio
   * is its measured throughput while busy, whatever its batch sizes, its
   * latency line or whether it runs batches one after the other or side by
   * side. Measured, not predicted from the latency fit: on a machine whose
   * cores the model shares, batch latency follows the load more than the batch
   * size, and a fitted line then says nothing about capacity. Under overload
   * the queue fills, batches grow and so does the measured rate: the estimate
   * corrects itself upwards instead of holding the queue short.
   */
  answeredSum = 0;
  busySum = 0;
  /**
   * The highest of those rates lately (decaying, half-life 30 s): what
   * admission uses. The measured rate dips when the model is starved of CPU
   * by the very requests being refused (a closed-loop flood on a small
   * machine), and a dip taken for capacity would keep refusing: measured here,
   * 200 clients then got 94% refusals where the fresh system answered them all.
   */
  peakRate = 0;
  /** When the sums were last brought up to date, and whether a batch was in flight since. */
  accountedAt = 0;
  busy = false;
  /** Dispatch sequence number of its last batch: the tie-break, so idle replicas take turns. */
  lastTurn = -1;
  failedAt = Number.NEGATIVE_INFINITY;
  /** When its latency model last learned from an answered batch. */
  observedAt = Number.NEGATIVE_INFINITY;
  /** When its last batch came back. */
  lastFinishedAt = Number.NEGATIVE_INFINITY;
  /**
   * For a back-to-back replica: when it is expected to have answered every
   * batch it holds (each starts when the one ahead ends). A batch sent now
   * starts then, so its size, its hold and what is hopeless count from then.
   */
  freeAt = Number.NEGATIVE_INFINITY;
  active = true;

  constructor(
    readonly endpoint: string,
    readonly sizer: BatchSizer,
  ) {}
}

/**
 * The batching of one model version: its queue (earliest deadline first, latest first under overload,
 * bounded), the batch-size choice per replica, the wait window, the dispatch
 * of batches to replicas with free capacity, and retries when a replica fails.
 * Pure and synchronous: time comes from the clock, model calls are made by
 * the `send` callback, whose caller reports back with `finished`.
 */
export class VersionBatcher<T extends BatchItem> {
  private readonly queue: BatchQueue<T>;
  private readonly replicas = new Map<string, ReplicaState>();
  private readonly options: VersionBatcherOptions;
  private settings: BatcherSettings;
  private nextDispatchId = 1;
  private turn = 0;
  private pumping = false;
  private pumpAgain = false;
  private wake: { at: number; cancel: () => void } | undefined;
  private lastArrival: number | undefined;
  /** Smoothed time between arriving queries (ms): whether waiting will bring more. */
  private arrivalGapMs: number | undefined;

  constructor(
    readonly key: string,
    settings: BatcherSettings,
    private readonly output: BatcherOutput<T>,
    options: Partial<VersionBatcherOptions> & { clock: Clock },
  ) {
    this.options = { ...defaultVersionBatcherOptions, ...options };
    this.settings = settings;
    this.queue = new BatchQueue<T>(settings.maxQueueLength);
  }

  configure(settings: BatcherSettings): void {
    const s = this.settings;
    if (
      s.maxBatchSize === settings.maxBatchSize &&
      s.fixedSize === settings.fixedSize &&
      s.maxWaitMs === settings.maxWaitMs &&
      s.maxInFlightPerReplica === settings.maxInFlightPerReplica &&
      s.maxQueueLength === settings.maxQueueLength
    ) {
      return;
    }
    this.settings = settings;
    this.queue.setMaxLength(settings.maxQueueLength);
    this.pump();
  }

  /** The endpoints of the ready replicas; batches in flight to others finish normally. */
  setReplicas(endpoints: readonly string[]): void {
    const wanted = new Set(endpoints);
    for (const [endpoint, r] of this.replicas) {
      if (wanted.has(endpoint)) continue;
      r.active = false;
      if (r.inFlight.size === 0) this.replicas.delete(endpoint);
    }
    for (const endpoint of endpoints) {
      const existing = this.replicas.get(endpoint);
      if (existing) existing.active = true;
      else this.replicas.set(endpoint, new ReplicaState(endpoint, new BatchSizer(this.options.sizer)));
    }
    this.pump();
  }

  activeReplicas(): number {
    let n = 0;
    for (const r of this.replicas.values()) if (r.active) n++;
    return n;
  }

  queueLength(): number {
    return this.queue.length;
  }

  queueCapacity(): number {
    return this.queue.capacity;
  }

  /** The replica's latency model and AIMD state, for tests and metrics. */
  sizerOf(endpoint: string): BatchSizer | undefined {
    return this.replicas.get(endpoint)?.sizer;
  }

  /**
   * Whether the queue ahead would make `count` queries with this deadline
   * late: their predicted answer (the queries ahead, queued and in flight, then
   * these, drained at the replicas' measured throughput) comes after the
   * deadline. Undefined: admit (they fit; nothing is ahead; no replica has
   * answered enough to measure yet; or a batch takes longer than the deadline
   * even on an idle replica, which is a slow model, not overload, and keeps
   * today's answer: the default at the deadline).
   */
  lateAdmission(count: number, deadline: number): LateAdmission | undefined {
    const now = this.options.clock.now();
    const budget = deadline - now;
    let rate = 0;
    let soonestMs = Number.POSITIVE_INFINITY;
    let ahead = this.queue.length;
    let nextBatches = 0;
    for (const r of this.replicas.values()) {
      if (!r.active) continue;
      const batchMs = r.sizer.model.recentMeanMs();
      this.accountBusy(r, now);
      if (batchMs === undefined || r.busySum < MIN_MEASURED_BUSY_MS) return undefined;
      const next = r.sizer.size(budget, this.settings.maxBatchSize);
      rate += Math.max(r.peakRate, this.fullBatchRate(r, next));
      soonestMs = Math.min(soonestMs, batchMs);
      ahead += r.inFlightItems;
      nextBatches += next;
    }
    // Never refuse while what is ahead fits in the replicas' next batches: the queue must be able to fill
    // a larger batch than the last, or a rate measured at small batches (a loaded machine, a cold start)
    // would hold batches, and so the rate, small for good.
    if (rate === 0 || ahead <= nextBatches || soonestMs > budget) return undefined;
    // The queue ahead drains at the rate; then these queries take a batch's latency at least (the last of them is
    // answered when its batch is, not when the rate's steady drain would reach it).
    const predictedMs = ahead / rate + Math.max(soonestMs, count / rate);
    return predictedMs > budget ? { predictedMs, ahead } : undefined;
  }

  /**
   * Queries per ms the replica answers in batches of `size` by its fitted
   * latency line (0 without a fit), one after the other or, side by side, as
   * many at once as it may hold: what it can give once the queue fills such
   * batches. Its measured rate is lower until then: at a light load batches
   * are small, and a rate measured at batches of 2 would refuse the queries
   * that would have filled larger ones (on the fake clock, 5-13% refused at
   * half to nine tenths of the capacity after a light warm-up).
   */
  private fullBatchRate(r: ReplicaState, size: number): number {
    const ms = r.sizer.model.mean(size);
    if (ms === undefined || ms <= 0) return 0;
    return FULL_BATCH_RATE_HEADROOM * (r.sizer.serial ? 1 : this.settings.maxInFlightPerReplica) * (size / ms);
  }

  /** Queues all the items, or none (false) when they do not all fit. */
  enqueue(items: readonly T[]): boolean {
    if (!this.queue.hasRoom(items.length)) return false;
    const now = this.options.clock.now();
    if (this.lastArrival !== undefined && items.length > 0) {
      const gap = (now - this.lastArrival) / items.length;
      this.arrivalGapMs = this.arrivalGapMs === undefined ? gap : 0.9 * this.arrivalGapMs + 0.1 * gap;
    }
    this.lastArrival = now;
    for (const item of items) item.queued = this.queue.push(item, item.deadline, now) as QueueNode<unknown>;
    this.pump();
    return true;
  }

  /** The item was answered elsewhere (deadline, cancellation): it leaves the queue; a batch nobody waits for is aborted. */
  release(item: T): void {
    if (item.queued !== undefined) {
      this.queue.remove(item.queued as QueueNode<T>);
      item.queued = undefined;
      return;
    }
    const d = item.inFlight;
    if (d === undefined) return;
    item.inFlight = undefined;
    d.live--;
    if (d.live === 0) d.controller.abort();
  }

  /**
   * The model call of `d` ended. Frees the replica's slot, teaches its latency
   * model, requeues a failed batch's queries when another replica can take
   * them in time, and returns the queries that must be answered with the
   * failure instead.
   */
  finished(d: Dispatch<T>, outcome: DispatchOutcome): T[] {
    const r = this.replicas.get(d.replica);
    const now = this.options.clock.now();
    if (r?.inFlight.delete(d as Dispatch<unknown>)) {
      r.inFlightItems -= d.items.length;
      this.accountBusy(r, now);
      if (outcome.kind === "ok") r.answeredSum += d.items.length;
    }
    for (const item of d.items) if (item.inFlight === d) item.inFlight = undefined;
    const giveUp: T[] = [];
    if (r !== undefined) {
      if (outcome.kind === "ok") {
        // Were the replica back to back, it started this batch when it answered the one ahead (BatchSizer tells
        // which from both times); its wait in line depends on what else was sent and is accounted by freeAt.
        const startedAt = Math.max(d.sentAt, r.lastFinishedAt);
        r.lastFinishedAt = now;
        r.sizer.observe(d.padTo, now - d.sentAt, d.budgetMs, now - startedAt);
        r.observedAt = now;
      } else if (outcome.kind === "abandoned") {
        // Aborted because every query in it expired: the replica was too slow for this batch.
        if (now - d.sentAt >= d.budgetMs) {
          r.sizer.missed();
          r.failedAt = now;
        }
      } else {
        r.failedAt = now;
      }
    }
    if (outcome.kind === "failed") {
      const elsewhere = outcome.retryable && this.hasOtherReplica(d.replica);
      const retry: T[] = [];
      for (const item of d.items) {
        if (item.settled) continue;
        if (elsewhere && item.attempts < this.options.maxAttempts && item.deadline > now && this.queue.hasRoom(retry.length + 1)) retry.push(item);
        else giveUp.push(item);
      }
      for (const item of retry) item.queued = this.queue.push(item, item.deadline, now) as QueueNode<unknown>;
    }
    if (r !== undefined) this.refreshFreeAt(r, now);
    if (r !== undefined && !r.active && r.inFlight.size === 0) this.replicas.delete(r.endpoint);
    this.pump();
    return giveUp;
  }

  /** Stops dispatching (the version left the configuration); queued queries are answered by their deadlines. */
  close(): void {
    this.wake?.cancel();
    this.wake = undefined;
    this.setReplicas([]);
  }

  private hasOtherReplica(endpoint: string): boolean {
    for (const r of this.replicas.values()) if (r.active && r.endpoint !== endpoint) return true;
    return false;
  }

  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.dispatchWhatFits();
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private dispatchWhatFits(): void {
    const now = this.options.clock.now();
    this.queue.dropExpired(now);
    for (let head = this.queue.peek(); head !== undefined; head = this.queue.peek()) {
      const replica = this.pickReplica(now);
      if (replica === undefined) return;
      const startsAt = this.startsAt(replica, now);
      if (this.dropHopeless(replica, now, startsAt)) continue;
      const order = this.takeOrder(head, now);
      const first = order === "earliest" ? head : (this.queue.peekLatest() as QueueNode<T>);
      const cap = this.settings.maxBatchSize;
      const fixed = this.settings.fixedSize && cap > 0;
      const target = this.batchSize(replica, first.deadline - startsAt);
      if (this.queue.length < target) {
        const fill = order === "earliest" ? this.holdUntil(head, target, replica, fixed, startsAt - now) : Number.NEGATIVE_INFINITY;
        const until = Math.max(fill, this.pipelineHoldUntil(first, target, replica));
        if (until > now) {
          this.wakeAt(until, now);
          return;
        }
      }
      const items = this.queue.take(target, now, order);
      if (items.length > 0) this.dispatch(replica, items, fixed ? cap : items.length, now);
    }
  }

  /**
   * Earliest deadline first, unless the queue is overloaded: its head has
   * waited more than the set fraction of its budget (a sojourn time, as CoDel
   * measures it: observed, not predicted, so it holds when the latency model
   * or the measured rate is wrong, or when the answers lose time after the
   * router, in a gateway's lagging event loop).
   */
  private takeOrder(head: QueueNode<T>, now: number): TakeOrder {
    const { overloadOrder, overloadSojournFraction } = this.options;
    if (overloadOrder === "earliest") return "earliest";
    return now - head.enqueuedAt > overloadSojournFraction * (head.deadline - head.enqueuedAt) ? overloadOrder : "earliest";
  }

  /**
   * Takes the queries at the head that a batch sent now to `replica` would
   * answer too late, though a batch sent when they arrived would not have:
   * under overload they are the ones about to expire, and sending them would
   * spend the model on answers nobody waits for (earliest-deadline-first's
   * domino effect). With a full batch's worth queued (a backlog), "too late"
   * is for a full batch: a head that only a smaller one could still answer
   * would shrink the batch to its deadline and spend the replica's fixed cost
   * per batch on few queries while the backlog waits (measured: batches of
   * 10-11 for the first seconds at 2x a 20 ms + 0.5 ms/query model's
   * capacity). True when it dropped any.
   */
  private dropHopeless(replica: ReplicaState, now: number, startsAt: number): boolean {
    const recentMs = replica.sizer.model.recentMeanMs();
    if (recentMs === undefined) return false;
    const latest = this.queue.peekLatest();
    const full = latest === undefined ? 0 : this.batchSize(replica, latest.deadline - startsAt);
    const fullMs = this.queue.length >= full ? replica.sizer.model.mean(full) : undefined;
    const returnMs = startsAt - now + (fullMs ?? recentMs);
    const hopeless: T[] = [];
    for (let head = this.queue.peek(); head !== undefined; head = this.queue.peek()) {
      if (head.deadline - now >= returnMs || head.deadline - head.enqueuedAt < returnMs) break;
      this.queue.remove(head);
      head.item.queued = undefined;
      hopeless.push(head.item);
    }
    if (hopeless.length === 0) return false;
    this.output.hopeless(hopeless);
    return true;
  }

  /**
   * Adds the time since the last change of the replica's in-flight count to
   * its busy time if it was busy, and decays both sums by the wall time passed
   * (half-life 1 s), idle or not: an overload's measure fades within seconds of
   * its end instead of holding admission to it.
   */
  private accountBusy(r: ReplicaState, now: number): void {
    const elapsed = now - r.accountedAt;
    const decay = 0.5 ** (elapsed / 1000);
    r.busySum = r.busySum * decay + (r.busy ? elapsed : 0);
    r.answeredSum *= decay;
    if (r.busySum >= MIN_MEASURED_BUSY_MS) r.peakRate = Math.max(r.peakRate * 0.5 ** (elapsed / 30_000), r.answeredSum / r.busySum);
    r.accountedAt = now;
    r.busy = r.inFlight.size > 0;
  }

  /** Until when to hold a batch open for more queries (≤ now: send now). Never past the head's deadline minus the predicted latency. */
  private holdUntil(head: QueueNode<T>, target: number, replica: ReplicaState, fixed: boolean, waitMs: number): number {
    const window = fixed ? (this.settings.maxWaitMs ?? Number.POSITIVE_INFINITY) : (this.settings.maxWaitMs ?? this.autoWaitMs(replica));
    if (window <= 0) return Number.NEGATIVE_INFINITY;
    const predicted = replica.sizer.model.p99(target) ?? (head.deadline - head.enqueuedAt) / 2;
    return Math.min(head.enqueuedAt + window, head.deadline - waitMs - predicted);
  }

  /** The size of the replica's next batch when its tightest deadline is `budgetMs` from its start: max_batch_size in fixed-size mode. */
  private batchSize(replica: ReplicaState, budgetMs: number): number {
    const cap = this.settings.maxBatchSize;
    return this.settings.fixedSize && cap > 0 ? cap : replica.sizer.size(budgetMs, cap);
  }

  /** When a batch sent to the replica now would start: at once, or, for a back-to-back replica, when it has answered what it holds. */
  private startsAt(r: ReplicaState, now: number): number {
    return r.sizer.serial && r.inFlight.size > 0 ? Math.max(now, r.freeAt) : now;
  }

  /** A batch's expected latency on the replica: the fitted mean (a chain of p99s would overshoot), else the recent mean. */
  private expectedMs(r: ReplicaState, size: number): number {
    return r.sizer.model.mean(size) ?? r.sizer.model.recentMeanMs() ?? 0;
  }

  /** freeAt from the batches in flight: one after the other from now, each its predicted latency (in service, or waiting). */
  private refreshFreeAt(r: ReplicaState, now: number): void {
    let at = now;
    for (const d of r.inFlight) at += this.expectedMs(r, d.padTo);
    r.freeAt = at;
  }

  /**
   * Until when a batch for a replica that is still answering another is held
   * to fill: until shortly before the one in flight is expected back (its
   * predicted latency after it was sent, less a lead of a quarter of it), and
   * never past the head's deadline minus the predicted latency. A replica that
   * runs its batches one after the other (the Python runtime) would only queue
   * a batch sent sooner behind the first, and a small one spends its fixed
   * cost on few queries: with a 20 ms + 0.5 ms per query model, sending at once
   * kept batches at 2-16 and the replica at half its capacity (measured on the
   * fake clock: 279 answers/s of 571; 480 with the hold). Only for a replica
   * seen to answer back to back (BatchSizer.serial); once a full batch is
   * waiting it goes at once.
   */
  private pipelineHoldUntil(head: QueueNode<T>, target: number, replica: ReplicaState): number {
    if (!replica.sizer.serial || replica.inFlight.size === 0) return Number.NEGATIVE_INFINITY;
    const predicted = replica.sizer.model.p99(target) ?? replica.sizer.model.recentMeanMs();
    if (predicted === undefined) return Number.NEGATIVE_INFINITY;
    return Math.min(replica.freeAt - PIPELINE_LEAD_FRACTION * predicted, head.deadline - predicted);
  }

  /**
   * The automatic wait window: on only where it pays, i.e. the replica has a
   * fitted fixed cost per batch worth sharing and queries arrive faster than
   * that cost, so waiting it out is expected to bring at least one more query;
   * and only behind a batch in flight. An idle replica gets what is queued at
   * once: holding it idle to fill put a closed loop of callers in lockstep,
   * every caller in one batch and the replica idle while the answers went back
   * and the next queries came (measured: 64 callers of a 2 ms + 0.05 ms/query
   * model, one batch of 64 every 15 ms, 4.2k answers/s; 5.8k/s sent at once,
   * in two batches of ~30 taking turns).
   */
  private autoWaitMs(replica: ReplicaState): number {
    if (replica.inFlight.size === 0) return 0;
    const fixedCost = replica.sizer.model.fixedCostMs();
    if (fixedCost === undefined || fixedCost < this.options.autoWaitMinFixedCostMs) return 0;
    const window = Math.min(fixedCost, this.options.autoWaitMaxMs);
    if (this.arrivalGapMs === undefined || this.arrivalGapMs > window) return 0;
    return window;
  }

  private wakeAt(at: number, now: number): void {
    if (this.wake !== undefined && this.wake.at <= at) return;
    this.wake?.cancel();
    const cancel = this.options.clock.setTimer(at - now, () => {
      this.wake = undefined;
      this.pump();
    });
    this.wake = { at, cancel };
  }

  /**
   * The replica with free capacity expected to finish soonest: (batches in
   * flight + 1) × its recent batch latency, so faster replicas take more.
   * Lagging replicas take nothing; recently failed ones only when no other
   * can; an idle one with a stale estimate counts as unmeasured; ties go to
   * the one whose turn is oldest (round-robin when idle).
   */
  private pickReplica(now: number): ReplicaState | undefined {
    let best: ReplicaState | undefined;
    let bestScore = 0;
    for (const r of this.replicas.values()) {
      if (!r.active || r.inFlight.size >= this.settings.maxInFlightPerReplica) continue;
      if (r.inFlight.size > 0 && this.lagging(r, now)) continue;
      const stale = r.inFlight.size === 0 && now - r.observedAt > this.options.staleEstimateMs;
      let score = stale ? 0 : (r.inFlight.size + 1) * (r.sizer.model.recentMeanMs() ?? 0);
      if (now - r.failedAt < this.options.failureCooldownMs) score += COOLDOWN_PENALTY;
      if (best === undefined || score < bestScore || (score === bestScore && r.lastTurn < best.lastTurn)) {
        best = r;
        bestScore = score;
      }
    }
    return best;
  }

  private lagging(r: ReplicaState, now: number): boolean {
    const mean = r.sizer.model.recentMeanMs();
    for (const d of r.inFlight) {
      const expected = d.predictedMs ?? mean;
      if (expected !== undefined && now - d.sentAt > this.options.lagFactor * expected + this.options.lagSlackMs) return true;
    }
    return false;
  }

  private dispatch(r: ReplicaState, items: T[], padTo: number, now: number): void {
    let tightest = Number.POSITIVE_INFINITY;
    let latest = Number.NEGATIVE_INFINITY;
    for (const item of items) {
      if (item.deadline < tightest) tightest = item.deadline;
      if (item.deadline > latest) latest = item.deadline;
    }
    const d: Dispatch<T> = {
      id: this.nextDispatchId++,
      replica: r.endpoint,
      items,
      padTo,
      sentAt: now,
      budgetMs: tightest - now,
      timeoutMs: latest - now,
      predictedMs: r.sizer.model.p99(padTo),
      controller: new AbortController(),
      live: items.length,
    };
    for (const item of items) {
      item.queued = undefined;
      item.inFlight = d as Dispatch<unknown>;
      item.attempts++;
    }
    this.accountBusy(r, now);
    r.freeAt = Math.max(now, r.freeAt) + this.expectedMs(r, padTo);
    r.inFlight.add(d as Dispatch<unknown>);
    r.inFlightItems += items.length;
    r.busy = true;
    r.lastTurn = this.turn++;
    this.output.send(d);
  }
}
