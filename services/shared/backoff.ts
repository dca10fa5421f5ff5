export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Fraction of the delay added or removed at random, so peers don't retry in step. */
  jitter: number;
}

/** Exponential backoff: initial, doubling up to max; reset after a success. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly options: BackoffOptions = { initialMs: 200, maxMs: 10_000, jitter: 0.2 },
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const base = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.attempt);
    this.attempt++;
    return Math.round(base * (1 + this.options.jitter * (2 * this.random() - 1)));
  }

  reset(): void {
    this.attempt = 0;
  }
}
