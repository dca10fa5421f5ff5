import { LatencyModel } from "./latency-model.js";

export interface BatchSizerOptions {
  /** AIMD's first limit, before any batch has been observed. */
  initialLimit: number;
  /** AIMD: added to the limit after a full batch met its deadline. */
  additiveStep: number;
  /** AIMD: the limit is multiplied by this after a batch missed its deadline. */
  decreaseFactor: number;
  /** No batch is larger, whatever the model says (max_batch_size 0 means "no limit" up to this). */
  hardMax: number;
}

export const defaultBatchSizerOptions: BatchSizerOptions = { initialLimit: 16, additiveStep: 4, decreaseFactor: 0.75, hardMax: 4096 };

/**
 * Its spread (mean absolute residual) must be below this fraction of the other
 * model's for a replica to be taken as back to back, and above its inverse to
 * be taken as side by side again: hysteresis, so that noise does not flip it.
 */
const SERIAL_SPREAD_RATIO = 0.7;

/**
 * Chooses how many queries one replica gets in its next batch. With a fitted
 * `LatencyModel`: the batch expected to answer the most queries by the
 * tightest deadline in it (LatencyModel.mostInTime), but at most twice the largest batch seen so far
 * (growth explores with real queries, never padding). Without one: AIMD,
 * growing after full batches that met their deadline, shrinking after misses.
 *
 * It learns two latency models side by side and tells from them whether the
 * replica runs its batches one after the other (the Python runtime's default)
 * or side by side: a batch's time from sending to answer, and its time from
 * sending or the previous answer, whichever came later (its own time, were
 * the replica back to back). A back-to-back replica's own times follow its
 * batch sizes and its times from sending do not (they include a wait in line
 * that depends on what else was sent); a side-by-side replica's are the other
 * way round. `model` is the one that fits.
 */
export class BatchSizer {
  private readonly sentToAnswer: LatencyModel;
  private readonly ownTime: LatencyModel;
  private backToBack = false;
  private aimdLimit: number;

  constructor(private readonly options: BatchSizerOptions = defaultBatchSizerOptions) {
    this.sentToAnswer = new LatencyModel();
    this.ownTime = new LatencyModel();
    this.aimdLimit = options.initialLimit;
  }

  /** The latency model that describes the replica: batch latency from sending, or, back to back, from its start. */
  get model(): LatencyModel {
    return this.backToBack ? this.ownTime : this.sentToAnswer;
  }

  /** Whether the replica is seen to run its batches one after the other. */
  get serial(): boolean {
    return this.backToBack;
  }

  /** The batch size for a batch whose tightest deadline is `budgetMs` away; `cap` is max_batch_size (0: none). */
  size(budgetMs: number, cap: number): number {
    const limit = cap > 0 ? Math.min(cap, this.options.hardMax) : this.options.hardMax;
    let n = this.aimdLimit;
    if (this.model.ready()) {
      const largest = this.model.largestObserved();
      n = this.model.mostInTime(budgetMs, Math.min(limit, Math.max(2 * largest, largest + this.options.additiveStep))) ?? n;
    }
    // The head query goes even when no size is predicted to fit: it may still make it.
    return Math.max(1, Math.min(limit, n));
  }

  /**
   * Learns from a batch of `size` that took `latencyMs` from sending to answer and had `budgetMs` until its
   * tightest deadline; `ownMs`: its time since it was sent or since the replica's previous answer, whichever
   * was later.
   */
  observe(size: number, latencyMs: number, budgetMs: number, ownMs = latencyMs): void {
    this.sentToAnswer.observe(size, latencyMs);
    this.ownTime.observe(size, ownMs);
    const sent = this.sentToAnswer.spreadMs();
    const own = this.ownTime.spreadMs();
    if (sent !== undefined && own !== undefined) {
      if (!this.backToBack && own < SERIAL_SPREAD_RATIO * sent) this.backToBack = true;
      else if (this.backToBack && sent < SERIAL_SPREAD_RATIO * own) this.backToBack = false;
    }
    if (latencyMs > budgetMs) {
      this.aimdLimit = Math.max(1, Math.floor(this.aimdLimit * this.options.decreaseFactor));
    } else if (size >= this.aimdLimit) {
      this.aimdLimit = Math.min(this.options.hardMax, this.aimdLimit + this.options.additiveStep);
    }
  }

  /** A batch was abandoned because every query in it expired first: a deadline miss with no latency to learn from. */
  missed(): void {
    this.aimdLimit = Math.max(1, Math.floor(this.aimdLimit * this.options.decreaseFactor));
  }

  aimd(): number {
    return this.aimdLimit;
  }
}
