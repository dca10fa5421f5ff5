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
 * Chooses how many queries one replica gets in its next batch. With a fitted
 * `LatencyModel`: the largest batch whose predicted p99 still meets the
 * tightest deadline in it, but at most twice the largest batch seen so far
 * (growth explores with real queries, never padding). Without one: AIMD,
 * growing after full batches that met their deadline, shrinking after misses.
 */
export class BatchSizer {
  readonly model: LatencyModel;
  private aimdLimit: number;

  constructor(
    private readonly options: BatchSizerOptions = defaultBatchSizerOptions,
    model: LatencyModel = new LatencyModel(),
  ) {
    this.model = model;
    this.aimdLimit = options.initialLimit;
  }

  /** The batch size for a batch whose tightest deadline is `budgetMs` away; `cap` is max_batch_size (0: none). */
  size(budgetMs: number, cap: number): number {
    const limit = cap > 0 ? Math.min(cap, this.options.hardMax) : this.options.hardMax;
    const fitted = this.model.largestWithin(budgetMs);
    let n = this.aimdLimit;
    if (fitted !== undefined) {
      const largest = this.model.largestObserved();
      n = Math.min(fitted, Math.max(2 * largest, largest + this.options.additiveStep));
    }
    // The head query goes even when no size is predicted to fit: it may still make it.
    return Math.max(1, Math.min(limit, n));
  }

  /** Learns from a batch of `size` that took `latencyMs` and had `budgetMs` until its tightest deadline. */
  observe(size: number, latencyMs: number, budgetMs: number): void {
    this.model.observe(size, latencyMs);
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
