import { describe, expect, it } from "vitest";
import { MetricsTextError, parseMetricsText } from "./prometheus-text.js";

describe("parseMetricsText", () => {
  it("reads samples with labels, escapes, special values and timestamps, skipping comments", () => {
    const text = [
      "# HELP clipper_router_queries_total Queries.",
      "# TYPE clipper_router_queries_total counter",
      'clipper_router_queries_total{application="a",model="m",version="1",outcome="answered",reason="predicted"} 42',
      'clipper_router_query_duration_seconds_bucket{application="a",le="+Inf"} 7 1700000000000',
      'odd{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",} 1.5e3',
      "process_up 1",
      "gauge_nan NaN",
      "neg -Inf",
      "",
    ].join("\n");
    const samples = parseMetricsText(text, 100);
    expect(samples).toEqual([
      { name: "clipper_router_queries_total", labels: { application: "a", model: "m", version: "1", outcome: "answered", reason: "predicted" }, value: 42 },
      { name: "clipper_router_query_duration_seconds_bucket", labels: { application: "a", le: "+Inf" }, value: 7 },
      { name: "odd", labels: { path: "C:\\dir", quote: 'say "hi"', nl: "a\nb" }, value: 1500 },
      { name: "process_up", labels: {}, value: 1 },
      { name: "gauge_nan", labels: {}, value: Number.NaN },
      { name: "neg", labels: {}, value: Number.NEGATIVE_INFINITY },
    ]);
  });

  it("names the line of a malformed sample", () => {
    expect(() => parseMetricsText("ok 1\nbad{a=1} 2\n", 10)).toThrow(/line 2: expected ="..." after label a/);
    expect(() => parseMetricsText('x{a="1} 2', 10)).toThrow(/unterminated value of label a/);
    expect(() => parseMetricsText("x abc", 10)).toThrow(MetricsTextError);
    expect(() => parseMetricsText("x 1 2 3", 10)).toThrow(/at most a timestamp/);
  });

  it("refuses more samples than its bound", () => {
    expect(() => parseMetricsText("a 1\nb 2\nc 3\n", 2)).toThrow(/more than 2 samples/);
  });
});
