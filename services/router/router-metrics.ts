import { prom } from "../shared/index.js";
import type { PredictionCacheStats } from "./prediction-cache.js";
import type { QueryOutcome } from "./query-processor.js";

/** What the metrics read when scraped, so the query path pays nothing for them. */
export interface RouterMetricsSources {
  cacheStats?: () => PredictionCacheStats;
  queueLengths?: () => ReadonlyMap<string, number>;
}

/** Counts of the cache that only grow; turned into Prometheus counters by the difference since the last scrape. */
type CacheCounter = "hits" | "misses" | "deduplicated" | "evictions";

/** The router's Prometheus series. */
export class RouterMetrics {
  private readonly queries: prom.Counter<"application" | "outcome">;
  private readonly feedback: prom.Counter<"application">;
  private readonly batchSize: prom.Histogram<"model">;

  constructor(registry: prom.Registry, sources: RouterMetricsSources = {}) {
    this.queries = new prom.Counter({
      name: "clipper_router_queries_total",
      help: "Queries answered, by application and outcome (predicted, cached, or the reason for the default).",
      labelNames: ["application", "outcome"],
      registers: [registry],
    });
    this.feedback = new prom.Counter({
      name: "clipper_router_feedback_total",
      help: "Labelled inputs accepted as feedback, by application.",
      labelNames: ["application"],
      registers: [registry],
    });
    this.batchSize = new prom.Histogram({
      name: "clipper_router_batch_size",
      help: "Inputs per batch sent to a model replica, by model version.",
      labelNames: ["model"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers: [registry],
    });
    const queueLengths = sources.queueLengths;
    if (queueLengths !== undefined) {
      new prom.Gauge({
        name: "clipper_router_queue_length",
        help: "Queries waiting in each model version's batch queue.",
        labelNames: ["model"],
        registers: [registry],
        collect() {
          this.reset();
          for (const [model, n] of queueLengths()) this.set({ model }, n);
        },
      });
    }
    const cacheStats = sources.cacheStats;
    if (cacheStats !== undefined) {
      const counters: Array<[CacheCounter, string]> = [
        ["hits", "Prediction cache lookups answered from the cache."],
        ["misses", "Prediction cache lookups that went to a model."],
        ["deduplicated", "Queries answered by an identical query's model call in flight."],
        ["evictions", "Prediction cache entries evicted to stay within the byte bound."],
      ];
      for (const [field, help] of counters) {
        let reported = 0;
        new prom.Counter({
          name: `clipper_router_cache_${field}_total`,
          help,
          registers: [registry],
          collect() {
            const now = cacheStats()[field];
            this.inc(now - reported);
            reported = now;
          },
        });
      }
      new prom.Gauge({
        name: "clipper_router_cache_bytes",
        help: "Bytes held by the prediction cache (inputs, outputs and bookkeeping).",
        registers: [registry],
        collect() {
          this.set(cacheStats().bytes);
        },
      });
      new prom.Gauge({
        name: "clipper_router_cache_entries",
        help: "Entries in the prediction cache.",
        registers: [registry],
        collect() {
          this.set(cacheStats().entries);
        },
      });
    }
  }

  countQueries(application: string, outcomes: readonly { outcome: QueryOutcome }[]): void {
    const byOutcome = new Map<QueryOutcome, number>();
    for (const { outcome } of outcomes) byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
    for (const [outcome, n] of byOutcome) this.queries.inc({ application, outcome }, n);
  }

  countFeedback(application: string, accepted: number): void {
    this.feedback.inc({ application }, accepted);
  }

  observeBatch(model: string, size: number): void {
    this.batchSize.observe({ model }, size);
  }
}
