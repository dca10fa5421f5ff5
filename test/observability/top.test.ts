import { describe, expect, it } from "vitest";
import { runCli } from "../../cli/cli.js";
import { computeTop, parsePrometheusText, quantile, renderTop, runTop, type Scrape } from "../../cli/top.js";

function gatewayText(n: number, fast: number): string {
  return [
    "# HELP clipper_gateway_requests_total x",
    "# TYPE clipper_gateway_requests_total counter",
    `clipper_gateway_requests_total{application="a",protocol="rest",outcome="answered",code="ok",service="gateway"} ${n}`,
    `clipper_gateway_requests_total{application="a",protocol="rest",outcome="default",code="ok",service="gateway"} ${n / 10}`,
    `clipper_gateway_request_duration_seconds_bucket{le="0.01",application="a",protocol="rest",outcome="answered"} ${fast}`,
    `clipper_gateway_request_duration_seconds_bucket{le="0.1",application="a",protocol="rest",outcome="answered"} ${n + n / 10}`,
    `clipper_gateway_request_duration_seconds_bucket{le="+Inf",application="a",protocol="rest",outcome="answered"} ${n + n / 10}`,
    `clipper_gateway_request_duration_seconds_sum{application="a",protocol="rest",outcome="answered"} 1`,
    `clipper_gateway_request_duration_seconds_count{application="a",protocol="rest",outcome="answered"} ${n + n / 10}`,
  ].join("\n");
}

function routerText(predicted: number, cached: number, batches: number): string {
  const l = 'application="a",model="m",version="1"';
  return [
    `clipper_router_queries_total{${l},outcome="answered",reason="predicted"} ${predicted}`,
    `clipper_router_queries_total{${l},outcome="answered",reason="cached"} ${cached}`,
    `clipper_router_query_duration_seconds_bucket{le="0.005",${l}} ${predicted + cached}`,
    `clipper_router_query_duration_seconds_bucket{le="+Inf",${l}} ${predicted + cached}`,
    `clipper_router_query_duration_seconds_count{${l}} ${predicted + cached}`,
    `clipper_router_batch_size_bucket{le="4",model="m",version="1"} ${batches}`,
    `clipper_router_batch_size_bucket{le="+Inf",model="m",version="1"} ${batches}`,
    `clipper_router_batch_size_sum{model="m",version="1"} ${predicted}`,
    `clipper_router_batch_size_count{model="m",version="1"} ${batches}`,
  ].join("\n");
}

describe("clipper top", () => {
  it("parses Prometheus text with escaped labels and +Inf", () => {
    const samples = parsePrometheusText('# HELP x y\nx_total{a="q\\"uote",le="+Inf"} 3\nbad line\ny 2.5e-3\n');
    expect(samples).toEqual([
      { name: "x_total", labels: { a: 'q"uote', le: "+Inf" }, value: 3 },
      { name: "y", labels: {}, value: 0.0025 },
    ]);
  });

  it("interpolates quantiles inside buckets like histogram_quantile", () => {
    const h = {
      buckets: new Map([
        [1, 50],
        [2, 100],
        [Number.POSITIVE_INFINITY, 100],
      ]),
      sum: 0,
      count: 100,
    };
    expect(quantile(h, 0.5)).toBe(1);
    expect(quantile(h, 0.75)).toBe(1.5);
    expect(quantile({ buckets: new Map(), sum: 0, count: 0 }, 0.5)).toBeUndefined();
  });

  it("computes rates, percentiles, batch sizes and cache hit ratio between two scrapes", () => {
    const first: Scrape = { atMs: 0, gateway: parsePrometheusText(gatewayText(100, 100)), router: parsePrometheusText(routerText(80, 20, 20)) };
    const second: Scrape = { atMs: 2000, gateway: parsePrometheusText(gatewayText(300, 100)), router: parsePrometheusText(routerText(240, 60, 60)) };
    const total = computeTop(first, undefined);
    expect(total.windowSeconds).toBeUndefined();
    expect(total.apps[0]?.requestsPerSecond).toBe(110);
    const view = computeTop(second, first);
    expect(view.windowSeconds).toBe(2);
    // 220 more requests in 2 s; none of the new ones under 10 ms.
    expect(view.apps[0]).toMatchObject({ application: "a", requestsPerSecond: 110, defaultRatio: expect.closeTo(20 / 220, 9) });
    expect(view.apps[0]?.p50Seconds).toBeGreaterThan(0.01);
    expect(view.apps[0]?.p99Seconds).toBeLessThanOrEqual(0.1);
    expect(view.models).toEqual([expect.objectContaining({ application: "a", model: "m:1", queriesPerSecond: 100, cacheHitRatio: 0.2, meanBatchSize: 4 })]);
    const text = renderTop(view);
    expect(text).toContain("APPLICATION");
    expect(text).toMatch(/a\s+m:1\s+100\.0/);
    expect(text).toContain("20.0%");
  });

  it("refreshes a bounded number of times from the scraped endpoints", async () => {
    let scrapes = 0;
    const fakeFetch = (async (url: string | URL | Request) => {
      scrapes++;
      const k = Math.ceil(scrapes / 2);
      return new Response(String(url).includes("9339") ? routerText(8 * k, 2 * k, 2 * k) : gatewayText(10 * k, 10 * k));
    }) as typeof fetch;
    const written: string[] = [];
    let clock = 0;
    await runTop({
      gatewayMetricsUrl: "http://127.0.0.1:1337/metrics",
      routerMetricsUrl: "http://127.0.0.1:9339/metrics",
      iterations: 3,
      intervalMs: 0,
      fetch: fakeFetch,
      out: { write: (t: string) => written.push(t) },
      now: () => (clock += 1000),
    });
    expect(scrapes).toBe(6);
    expect(written).toHaveLength(3);
    expect(written[0]).toContain("totals since the services started");
    expect(written[2]).toContain("last 1.0 s");
  });

  it("runs as `clipper top --iterations 1` and reports an unreachable router", async () => {
    const out: string[] = [];
    const failing = (async () => {
      throw new Error("connection refused");
    }) as typeof fetch;
    const code = await runCli(["top", "--iterations", "1", "--data-dir", "/nonexistent-clipper", "--router-metrics", "127.0.0.1:1"], {
      stdout: { write: (t: string) => out.push(t) },
      stderr: { write: (t: string) => out.push(t) },
      env: {},
      cwd: "/",
      repoRoot: "/",
      fetch: failing,
    });
    expect(code).toBe(0);
    expect(out.join("")).toContain("cannot scrape metrics: connection refused");
  });
});
