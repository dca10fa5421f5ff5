/** Moving line charts (uPlot) over the streamed frames. */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { MetricsFrame } from "../../services/console/console-api.js";
import { columns, type FramePick } from "./series.js";

export interface LineSpec {
  label: string;
  color: string;
  pick: FramePick;
  /** A dashed line (a bound such as the SLO). */
  dash?: boolean;
}

export interface ChartSpec {
  title: string;
  lines: LineSpec[];
  /** How the y axis reads a value. */
  format: (v: number) => string;
  /** The y axis starts at 0 and reaches at least this. */
  minMax: number;
}

/** Points kept in view: ten minutes at one frame a second. */
const MAX_POINTS = 600;

export class LineChart {
  private readonly plot: uPlot;

  constructor(
    readonly element: HTMLElement,
    private readonly spec: ChartSpec,
  ) {
    const format = spec.format;
    this.plot = new uPlot(
      {
        title: spec.title,
        width: Math.max(240, element.clientWidth || 320),
        height: 150,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(spec.minMax, max * 1.15)] } },
        axes: [
          {
            stroke: "#8b949e",
            grid: { stroke: "#30363d" },
            ticks: { stroke: "#30363d" },
            // One short line per tick, spaced apart: the default two-line date labels overlap on a narrow chart.
            space: 90,
            values: (_u, ticks) =>
              ticks.map((t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })),
          },
          { stroke: "#8b949e", grid: { stroke: "#30363d" }, ticks: { stroke: "#30363d" }, size: 64, values: (_u, ticks) => ticks.map(format) },
        ],
        series: [
          {},
          ...spec.lines.map((l) => ({
            label: l.label,
            stroke: l.color,
            width: 2,
            spanGaps: false,
            points: { show: false },
            ...(l.dash ? { dash: [6, 4] } : {}),
            value: (_u: uPlot, v: number | null) => (v === null ? "–" : format(v)),
          })),
        ],
      },
      [[], ...spec.lines.map(() => [])],
      element,
    );
  }

  update(frames: readonly MetricsFrame[]): void {
    this.plot.setData(
      columns(
        frames,
        this.spec.lines.map((l) => l.pick),
        MAX_POINTS,
      ),
    );
  }

  resize(): void {
    const width = this.element.clientWidth;
    if (width > 0 && Math.abs(width - this.plot.width) > 4) this.plot.setSize({ width, height: 150 });
  }

  destroy(): void {
    this.plot.destroy();
  }
}
