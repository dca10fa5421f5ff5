import { describe, expect, it } from "vitest";
import type { MetricsFrame } from "../../services/console/console-api.js";
import { formatPercent, formatRate, formatSeconds } from "./format.js";
import { columns, FrameHistory } from "./series.js";
import { SseParser } from "./sse.js";

const frame = (atMs: number, throughput: number, p99: number | null): MetricsFrame => ({
  atMs,
  applications: { app: { throughput, p50: null, p99, defaultRate: 0, errorRate: null } },
  models: {},
  cacheHitRatio: null,
  policies: {},
  feedbackLoss: {},
  targets: [],
});

describe("columns", () => {
  it("lines up one column per pick with the frames' times, gaps as null", () => {
    const frames = [frame(1000, 5, 0.01), frame(2000, 7, null), frame(3000, 9, Number.NaN)];
    expect(columns(frames, [(f) => f.applications.app?.throughput, (f) => f.applications.app?.p99, (f) => f.applications.other?.p99], 10)).toEqual([
      [1, 2, 3],
      [5, 7, 9],
      [0.01, null, null],
      [null, null, null],
    ]);
  });

  it("keeps the newest points", () => {
    const frames = [frame(1000, 1, null), frame(2000, 2, null), frame(3000, 3, null)];
    expect(columns(frames, [(f) => f.applications.app?.throughput], 2)).toEqual([
      [2, 3],
      [2, 3],
    ]);
  });
});

describe("FrameHistory", () => {
  it("is bounded", () => {
    const h = new FrameHistory(2);
    h.replace([frame(1, 1, null), frame(2, 2, null), frame(3, 3, null)]);
    expect(h.all().map((f) => f.atMs)).toEqual([2, 3]);
    h.push(frame(4, 4, null));
    expect(h.all().map((f) => f.atMs)).toEqual([3, 4]);
    expect(h.latest()?.atMs).toBe(4);
  });
});

describe("SseParser", () => {
  it("assembles events split across chunks, skipping comments", () => {
    const p = new SseParser();
    expect(p.push(": keep-alive\n\nevent: fra")).toEqual([]);
    expect(p.push('me\ndata: {"a":1}\n\nevent: state\r\ndata: x\r\ndata: y\r\n\r\n')).toEqual([
      { event: "frame", data: '{"a":1}' },
      { event: "state", data: "x\ny" },
    ]);
    expect(p.push("data: plain\n\n")).toEqual([{ event: "message", data: "plain" }]);
  });
});

describe("format", () => {
  it("reads as an operator expects", () => {
    expect(formatSeconds(0.0004)).toBe("400 µs");
    expect(formatSeconds(0.0123)).toBe("12.3 ms");
    expect(formatSeconds(2.5)).toBe("2.50 s");
    expect(formatSeconds(null)).toBe("–");
    expect(formatRate(1234)).toBe("1.2k/s");
    expect(formatRate(42.4)).toBe("42/s");
    expect(formatRate(3.14)).toBe("3.1/s");
    expect(formatPercent(0.005)).toBe("0.5%");
    expect(formatPercent(0.25)).toBe("25%");
    expect(formatPercent(undefined)).toBe("–");
  });
});
