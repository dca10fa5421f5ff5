/**
 * A latency histogram in the style of HdrHistogram: log-spaced buckets 1% wide
 * from 1 µs up, so memory is bounded (a few thousand counters) whatever the
 * number of samples, and every percentile is within 1% of the true value.
 */
export class LatencyHistogram {
  /** Bucket i holds values in [GROWTH^i, GROWTH^(i+1)) microseconds. */
  private static readonly GROWTH = 1.01;
  private static readonly LOG_GROWTH = Math.log(LatencyHistogram.GROWTH);
  /** 1.01^2000 µs is about 4.4e8 s: nothing we measure is longer. */
  private static readonly BUCKETS = 2000;

  private readonly counts = new Float64Array(LatencyHistogram.BUCKETS);
  private total = 0;
  private sumMicros = 0;
  private maxMicros = 0;

  /** Records one latency in microseconds (values below 1 µs count as 1 µs). */
  record(micros: number): void {
    const v = Math.max(1, micros);
    const index = Math.min(LatencyHistogram.BUCKETS - 1, Math.floor(Math.log(v) / LatencyHistogram.LOG_GROWTH));
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.total++;
    this.sumMicros += v;
    if (v > this.maxMicros) this.maxMicros = v;
  }

  get count(): number {
    return this.total;
  }

  get meanMicros(): number {
    return this.total === 0 ? 0 : this.sumMicros / this.total;
  }

  get max(): number {
    return this.maxMicros;
  }

  /** The value at quantile q (0..1), as the geometric middle of its bucket; 0 when empty. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(this.maxMicros, LatencyHistogram.GROWTH ** (i + 0.5));
    }
    return this.maxMicros;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = (this.counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.total += other.total;
    this.sumMicros += other.sumMicros;
    this.maxMicros = Math.max(this.maxMicros, other.maxMicros);
  }
}
