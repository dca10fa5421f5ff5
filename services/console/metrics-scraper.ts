/**
 * Scrapes the services' /metrics on an interval and turns each round into a
 * frame (metric-frames.ts). Keeps the digests of one window and the last
 * frames for pages that open later; both bounded.
 */
import type { Logger } from "../shared/index.js";
import type { MetricsFrame, TargetStatus } from "./console-api.js";
import { computeFrame, digestScrape, type ScrapeDigest } from "./metric-frames.js";
import { parseMetricsText, type Sample } from "./prometheus-text.js";

export interface MetricsTarget {
  name: string;
  url: string;
}

export interface MetricsScraperOptions {
  targets: readonly MetricsTarget[];
  intervalMs: number;
  /** Rates are computed over this span (the oldest digest kept is at least this old). */
  windowMs: number;
  /** Frames kept for pages that open later. */
  historyFrames: number;
  /** A target's answer larger than this is refused (a service's /metrics is tens of KiB). */
  maxResponseBytes: number;
  maxSamplesPerTarget: number;
  /** The learning policies' numbers for this round (read from the registry), fetched beside the targets. */
  policies?: () => Promise<MetricsFrame["policies"]>;
  logger: Logger;
}

export type FrameListener = (frame: MetricsFrame) => void;

export class MetricsScraper {
  private readonly digests: ScrapeDigest[] = [];
  private readonly frames: MetricsFrame[] = [];
  private readonly listeners = new Set<FrameListener>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly failures = new Map<string, string>();

  constructor(private readonly options: MetricsScraperOptions) {}

  start(): void {
    const tick = () => {
      this.running = this.scrapeOnce()
        .then(() => undefined)
        .catch((err) => this.options.logger.error({ err }, "metrics round failed"))
        .finally(() => {
          this.running = undefined;
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  history(): MetricsFrame[] {
    return [...this.frames];
  }

  onFrame(listener: FrameListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** One round: every target at once, then a frame. */
  async scrapeOnce(now = Date.now()): Promise<MetricsFrame> {
    const policies = this.options.policies?.().catch((err: unknown) => {
      this.options.logger.warn({ err }, "reading the policies' states failed");
      return {};
    });
    const results = await Promise.all(this.options.targets.map((t) => this.scrapeTarget(t)));
    const samples: Sample[] = [];
    const statuses: TargetStatus[] = [];
    for (const [i, target] of this.options.targets.entries()) {
      const result = results[i];
      if (result === undefined) continue;
      if (typeof result === "string") {
        statuses.push({ name: target.name, url: target.url, up: false, error: result });
        if (this.failures.get(target.name) !== result) this.options.logger.warn({ target: target.name, url: target.url, error: result }, "metrics target down");
        this.failures.set(target.name, result);
      } else {
        statuses.push({ name: target.name, url: target.url, up: true });
        if (this.failures.delete(target.name)) this.options.logger.info({ target: target.name }, "metrics target up again");
        for (const s of result) samples.push(s);
      }
    }
    const digest = digestScrape(samples, now);
    // The digest a window ago (or the oldest one kept, early on) is the base of every rate.
    const base = this.digests.find((d) => now - d.atMs <= this.options.windowMs) ?? this.digests.at(-1);
    const frame = computeFrame(base, digest, statuses, (await policies) ?? {});
    this.digests.push(digest);
    while (this.digests.length > 1 && now - (this.digests[0]?.atMs ?? now) > this.options.windowMs) this.digests.shift();
    this.frames.push(frame);
    while (this.frames.length > this.options.historyFrames) this.frames.shift();
    for (const l of this.listeners) l(frame);
    return frame;
  }

  /** The target's samples, or why it could not be read. */
  private async scrapeTarget(target: MetricsTarget): Promise<Sample[] | string> {
    try {
      const response = await fetch(target.url, { signal: AbortSignal.timeout(Math.max(500, this.options.intervalMs * 2)) });
      if (!response.ok) return `HTTP ${response.status}`;
      const declared = Number(response.headers.get("content-length") ?? "0");
      if (declared > this.options.maxResponseBytes) return `answer of ${declared} bytes is over ${this.options.maxResponseBytes}`;
      const text = await response.text();
      if (text.length > this.options.maxResponseBytes) return `answer over ${this.options.maxResponseBytes} bytes`;
      return parseMetricsText(text, this.options.maxSamplesPerTarget);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return cause ?? (err as Error).message;
    }
  }
}
