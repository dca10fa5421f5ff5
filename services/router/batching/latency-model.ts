/** How much a `LatencyModel` remembers and when it trusts itself. */
export interface LatencyModelOptions {
  /** Most recent batches kept: the fit follows the replica as it changes. */
  window: number;
  /** Batches needed before predictions are made. */
  minSamples: number;
  /** Refit after this many new batches (the fit sorts the window). */
  refitEvery: number;
}

export const defaultLatencyModelOptions: LatencyModelOptions = { window: 128, minSamples: 8, refitEvery: 8 };

/**
 * The latency of one replica as a function of batch size, learned online from
 * the batches it answers: a least-squares line `fixed + perItem * size` over
 * the last `window` batches, plus the 99th percentile of the residuals. The
 * predicted p99 of a batch of n is `fixed + perItem * n + residualP99`.
 * Until there are `minSamples` batches of at least two different sizes it
 * predicts nothing and the caller falls back to AIMD.
 */
export class LatencyModel {
  private readonly sizes: Float64Array;
  private readonly latencies: Float64Array;
  private count = 0;
  private next = 0;
  private sinceFit = 0;
  private fit: { fixed: number; perItem: number; residualP99: number; spread: number; residuals: Float64Array; largest: number } | undefined;
  private smoothedMs: number | undefined;

  constructor(private readonly options: LatencyModelOptions = defaultLatencyModelOptions) {
    this.sizes = new Float64Array(options.window);
    this.latencies = new Float64Array(options.window);
  }

  observe(size: number, latencyMs: number): void {
    this.sizes[this.next] = size;
    this.latencies[this.next] = latencyMs;
    this.next = (this.next + 1) % this.options.window;
    if (this.count < this.options.window) this.count++;
    this.sinceFit++;
    // A plain moving average for ranking replicas, available from the first batch.
    this.smoothedMs = this.smoothedMs === undefined ? latencyMs : 0.8 * this.smoothedMs + 0.2 * latencyMs;
    if (this.fit === undefined || this.sinceFit >= this.options.refitEvery) this.refit();
  }

  /** Batches observed (at most the window). */
  samples(): number {
    return this.count;
  }

  ready(): boolean {
    return this.fit !== undefined;
  }

  /** Predicted p99 latency (ms) of a batch of `size`, or undefined while there is too little data. */
  p99(size: number): number | undefined {
    const f = this.fit;
    return f === undefined ? undefined : f.fixed + f.perItem * size + f.residualP99;
  }

  /** Predicted mean latency (ms) of a batch of `size` (the fitted line, without the residual margin), or undefined while there is too little data. */
  mean(size: number): number | undefined {
    const f = this.fit;
    return f === undefined ? undefined : f.fixed + f.perItem * size;
  }

  /** How far batches fall from the fitted line on average (ms, mean absolute residual); undefined without a fit. */
  spreadMs(): number | undefined {
    return this.fit?.spread;
  }

  /** The largest batch size this model has seen in its window: predictions far beyond it are guesses. */
  largestObserved(): number {
    return this.fit?.largest ?? 0;
  }

  /** The fitted cost of a batch regardless of its size (ms): what batching saves per merged batch. */
  fixedCostMs(): number | undefined {
    return this.fit?.fixed;
  }

  /**
   * The batch size up to `limit` that answers the most queries within
   * `budgetMs` in expectation: n × P(batch of n within budget), P from the
   * fitted line and the residuals seen. Undefined without a fit; 0 if no size
   * is likely to make it. Not the largest size whose p99 fits: where a few
   * slow batches (a hiccup of a shared CPU) put the residuals' p99 far above
   * the line, that size is tiny though the replica is as fast as ever, and
   * batches of one then halve its throughput under load (measured: batches of
   * 1-2 at 6,000 clients with a 94 ms p99 margin on a 31 ms batch); shrinking a
   * batch saves only its cost per query, never the hiccup.
   */
  mostInTime(budgetMs: number, limit: number): number | undefined {
    const f = this.fit;
    if (f === undefined) return undefined;
    const rs = f.residuals;
    let best = 0;
    let bestValue = 0;
    // P(n) only changes where a residual stops fitting: the best n is the largest one under some residual.
    for (let k = 0; k < rs.length; k++) {
      const room = budgetMs - f.fixed - (rs[k] as number);
      if (room <= 0) break;
      // The small tolerance keeps float noise in the fit from costing a whole item.
      const n = f.perItem <= 0 ? limit : Math.min(limit, Math.floor(room / f.perItem + 1e-9));
      if (n < 1) break;
      const value = n * (k + 1);
      if (value >= bestValue) [best, bestValue] = [n, value];
    }
    return best;
  }

  /** Recent mean latency of a batch (ms), from the first observation on; undefined before any. */
  recentMeanMs(): number | undefined {
    return this.smoothedMs;
  }

  private refit(): void {
    this.sinceFit = 0;
    const n = this.count;
    if (n < this.options.minSamples) return;
    let sx = 0;
    let sy = 0;
    let largest = 0;
    for (let i = 0; i < n; i++) {
      const x = this.sizes[i] as number;
      sx += x;
      sy += this.latencies[i] as number;
      if (x > largest) largest = x;
    }
    const mx = sx / n;
    const my = sy / n;
    let sxx = 0;
    let sxy = 0;
    for (let i = 0; i < n; i++) {
      const dx = (this.sizes[i] as number) - mx;
      sxx += dx * dx;
      sxy += dx * ((this.latencies[i] as number) - my);
    }
    // One batch size only: the slope is unknown, so the model is not ready yet (AIMD explores).
    if (sxx === 0 && this.fit === undefined) return;
    let perItem = sxx === 0 ? (this.fit?.perItem ?? 0) : Math.max(0, sxy / sxx);
    let fixed = my - perItem * mx;
    if (fixed < 0) {
      // Latency through the origin: no negative fixed cost.
      fixed = 0;
      perItem = my / Math.max(mx, 1e-9);
    }
    const residuals = new Float64Array(n);
    let spread = 0;
    for (let i = 0; i < n; i++) {
      const r = (this.latencies[i] as number) - (fixed + perItem * (this.sizes[i] as number));
      residuals[i] = r;
      spread += Math.abs(r);
    }
    residuals.sort();
    const residualP99 = Math.max(0, residuals[Math.min(n - 1, Math.ceil(0.99 * n) - 1)] as number);
    this.fit = { fixed, perItem, residualP99, spread: spread / n, residuals, largest };
  }
}
