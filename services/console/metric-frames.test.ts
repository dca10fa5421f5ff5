import { describe, expect, it } from "vitest";
import { bucketIncrease, computeFrame, counterIncrease, digestScrape, histogramQuantile } from "./metric-frames.js";
import { parseMetricsText } from "./prometheus-text.js";

const buckets = (entries: Array<[number, number]>) => new Map(entries);

describe("histogramQuantile", () => {
  it("interpolates within the bucket holding the rank, as PromQL does", () => {
    // 10 observations: 4 at most 0.01 s, 6 more up to 0.1 s.
    const h = buckets([
      [0.01, 4],
      [0.1, 10],
      [Number.POSITIVE_INFINITY, 10],
    ]);
    expect(histogramQuantile(0.5, h)).toBeCloseTo(0.01 + (0.09 * 1) / 6, 10);
    expect(histogramQuantile(0.2, h)).toBeCloseTo(0.005, 10);
    expect(histogramQuantile(0.99, h)).toBeCloseTo(0.01 + (0.09 * 5.9) / 6, 10);
  });

  it("answers the highest finite bound for a rank in +Inf, and null without observations", () => {
    expect(
      histogramQuantile(
        0.99,
        buckets([
          [0.5, 1],
          [Number.POSITIVE_INFINITY, 10],
        ]),
      ),
    ).toBe(0.5);
    expect(
      histogramQuantile(
        0.5,
        buckets([
          [0.5, 0],
          [Number.POSITIVE_INFINITY, 0],
        ]),
      ),
    ).toBeNull();
    expect(histogramQuantile(0.5, new Map())).toBeNull();
  });
});

describe("counter increases", () => {
  it("takes a decrease as a reset", () => {
    expect(counterIncrease(10, 15)).toBe(5);
    expect(counterIncrease(10, 3)).toBe(3);
    expect(counterIncrease(undefined, 7)).toBe(7);
    expect([...bucketIncrease(buckets([[1, 5]]), buckets([[1, 8]]))]).toEqual([[1, 3]]);
    expect([
      ...bucketIncrease(
        buckets([
          [1, 5],
          [2, 9],
        ]),
        buckets([
          [1, 2],
          [2, 10],
        ]),
      ),
    ]).toEqual([
      [1, 2],
      [2, 10],
    ]);
  });
});

const scrape = (answered: number, defaults: number, fast: number, slow: number, errors: number, hits: number, misses: number) =>
  parseMetricsText(
    [
      `clipper_router_queries_total{application="app",model="m",version="1",outcome="answered",reason="predicted"} ${answered}`,
      `clipper_router_queries_total{application="app",model="m",version="1",outcome="default",reason="slo_exceeded"} ${defaults}`,
      `clipper_router_query_duration_seconds_bucket{application="app",model="m",version="1",le="0.01"} ${fast}`,
      `clipper_router_query_duration_seconds_bucket{application="app",model="m",version="1",le="0.1"} ${fast + slow}`,
      `clipper_router_query_duration_seconds_bucket{application="app",model="m",version="1",le="+Inf"} ${fast + slow}`,
      `clipper_gateway_requests_total{application="app",protocol="rest",outcome="answered",code="ok"} ${answered + defaults}`,
      `clipper_gateway_requests_total{application="app",protocol="rest",outcome="error",code="invalid_argument"} ${errors}`,
      `clipper_router_batch_size_sum{model="m",version="1"} ${answered + defaults}`,
      `clipper_router_batch_size_count{model="m",version="1"} ${(answered + defaults) / 2}`,
      'clipper_router_queue_depth{model="m",version="1"} 3',
      'clipper_router_inflight_batches{model="m",version="1",replica="127.0.0.1:5000"} 2',
      `clipper_router_cache_hits_total ${hits}`,
      `clipper_router_cache_misses_total ${misses}`,
    ].join("\n"),
    1000,
  );

describe("computeFrame", () => {
  it("computes rates, fractions and quantiles over the window between two scrapes", () => {
    const older = digestScrape(scrape(100, 0, 100, 0, 0, 10, 10), 10_000);
    const newer = digestScrape(scrape(180, 20, 150, 50, 25, 40, 20), 12_000);
    const frame = computeFrame(older, newer, [{ name: "gateway", url: "http://x/metrics", up: true }]);
    const app = frame.applications.app;
    // 100 new queries in 2 s, 20 of them defaults; 125 gateway requests, 25 failed.
    expect(app?.throughput).toBe(50);
    expect(app?.defaultRate).toBeCloseTo(0.2, 10);
    expect(app?.errorRate).toBeCloseTo(0.2, 10);
    // 50 fast, 50 slow: the median sits at the top of the fast bucket.
    expect(app?.p50).toBeCloseTo(0.01, 10);
    expect(app?.p99).toBeCloseTo(0.01 + 0.09 * (49 / 50), 10);
    expect(frame.models["m:1"]).toEqual({ meanBatchSize: 2, batchesPerSecond: 25, queueDepth: 3, inFlightBatches: { "127.0.0.1:5000": 2 } });
    expect(frame.cacheHitRatio).toBeCloseTo(30 / 40, 10);
  });

  it("claims no rate from a first scrape alone", () => {
    const frame = computeFrame(undefined, digestScrape(scrape(100, 5, 100, 5, 1, 1, 1), 1000), []);
    expect(frame.applications.app).toEqual({ throughput: 0, p50: null, p99: null, defaultRate: null, errorRate: null });
    expect(frame.cacheHitRatio).toBeNull();
    expect(frame.models["m:1"]?.meanBatchSize).toBeNull();
  });
});

describe("feedback loss", () => {
  const scrape = (sum: number, count: number, atMs: number) =>
    digestScrape(
      parseMetricsText(
        [
          `clipper_router_feedback_loss_sum{application="app",model="a",version="1"} ${sum}`,
          `clipper_router_feedback_loss_count{application="app",model="a",version="1"} ${count}`,
          // Two versions of one model add up: the page shows a model's loss.
          'clipper_router_feedback_loss_sum{application="app",model="b",version="1"} 1',
          'clipper_router_feedback_loss_count{application="app",model="b",version="1"} 4',
          'clipper_router_feedback_loss_sum{application="app",model="b",version="2"} 3',
          'clipper_router_feedback_loss_count{application="app",model="b",version="2"} 4',
        ].join("\n"),
        100,
      ),
      atMs,
    );

  it("is the mean loss per model over the window and since the router started", () => {
    const frame = computeFrame(scrape(2, 10, 0), scrape(5, 14, 5000), []);
    expect(frame.feedbackLoss.app?.a).toEqual({ recent: 0.75, overall: 5 / 14, count: 14 });
    expect(frame.feedbackLoss.app?.b).toEqual({ recent: null, overall: 0.5, count: 8 });
  });

  it("has no recent loss on the first scrape, and takes a restarted router's counters whole", () => {
    expect(computeFrame(undefined, scrape(2, 10, 0), []).feedbackLoss.app?.a).toEqual({ recent: null, overall: 0.2, count: 10 });
    expect(computeFrame(scrape(5, 14, 0), scrape(1, 2, 5000), []).feedbackLoss.app?.a).toEqual({ recent: 0.5, overall: 0.5, count: 2 });
  });
});
