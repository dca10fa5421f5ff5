/**
 * The columns a chart draws, from the frames the console streams: x in
 * seconds (uPlot's time axis), one y column per line, null where a frame had
 * no value (a gap, not a zero).
 */
import type { MetricsFrame } from "../../services/console/console-api.js";

export type Columns = [number[], ...(number | null)[][]];

export type FramePick = (frame: MetricsFrame) => number | null | undefined;

/** One column per pick over the frames, the newest last, at most `maxPoints` of them. */
export function columns(frames: readonly MetricsFrame[], picks: readonly FramePick[], maxPoints: number): Columns {
  const shown = frames.slice(-maxPoints);
  const xs = shown.map((f) => f.atMs / 1000);
  const ys = picks.map((pick) =>
    shown.map((f) => {
      const v = pick(f);
      return v === undefined || v === null || !Number.isFinite(v) ? null : v;
    }),
  );
  return [xs, ...ys];
}

/** Frames kept on the page: appends and drops the oldest beyond `max`. */
export class FrameHistory {
  private frames: MetricsFrame[] = [];

  constructor(private readonly max: number) {}

  replace(frames: readonly MetricsFrame[]): void {
    this.frames = frames.slice(-this.max);
  }

  push(frame: MetricsFrame): void {
    this.frames.push(frame);
    if (this.frames.length > this.max) this.frames.splice(0, this.frames.length - this.max);
  }

  all(): readonly MetricsFrame[] {
    return this.frames;
  }

  latest(): MetricsFrame | undefined {
    return this.frames.at(-1);
  }
}
