// Not yet in the shared index (the lead adds them): tracing helpers and the latency buckets.
import {
  batchSizeBuckets,
  type ConfigView,
  defaultLatencyBuckets,
  modelKey,
  prom,
  type Span,
  SpanKind,
  type SpanLink,
  SpanStatusCode,
  TraceAttributes,
  trace,
  traceContext,
  tracer,
  tracingEnabled,
} from "../shared/index.js";
import { applicationPolicy } from "./application-policy.js";
import type { PredictionCacheStats } from "./prediction-cache.js";
import type { Answers, BatchObservation, QueryObserver, QueryOutcome, RequestObservation } from "./query-observer.js";

/** What the metrics read when scraped, so the query path pays nothing for them. */
export interface RouterMetricsSources {
  cacheStats?: () => PredictionCacheStats;
  /** Per model version key: queries waiting, and the bound past which new ones are refused. */
  queues?: () => ReadonlyMap<string, { depth: number; capacity: number }>;
}

export interface RouterMetricsOptions extends RouterMetricsSources {
  /** Upper bounds (seconds) of the latency histograms. */
  latencyBuckets?: readonly number[];
}

/** Counts of the cache that only grow; turned into Prometheus counters by the difference since the last scrape. */
type CacheCounter = "hits" | "misses" | "deduplicated" | "evictions";

/**
 * The reasons a query of a resolved model version can end with, whose series are created at zero as soon as the
 * version is linked: rate() and increase() see nothing of a series' first sample, so a series born at its first
 * SLO miss would hide that miss from the alerts.
 */
const RESOLVED_REASONS: readonly QueryOutcome[] = [
  "predicted",
  "slo_exceeded",
  "hopeless",
  "cancelled",
  "overloaded",
  "no_replica",
  "model_error",
  "batch_failed",
];

/** Upper bounds of the feedback loss histogram: losses are in [0, 1] (0/1 loss lands in the first and last). */
const LOSS_BUCKETS = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1];

/** Per model version ("name:version"): the loss of each output it gave for a labelled input. */
export type FeedbackLosses = ReadonlyMap<string, readonly number[]>;

/** The `outcome` label: answered by a model (or the cache), answered with the default, or shed for overload. */
export type OutcomeLabel = "answered" | "default" | "shed";

export function outcomeLabel(outcome: QueryOutcome): OutcomeLabel {
  if (outcome === "predicted" || outcome === "cached") return "answered";
  if (outcome === "overloaded") return "shed";
  return "default";
}

/** `name:version` → the two labels; "none" when no model version was resolved. */
export function modelLabels(key: string | undefined): { model: string; version: string } {
  if (key === undefined || key === "") return { model: "none", version: "none" };
  const colon = key.indexOf(":");
  return colon < 0 ? { model: key, version: "none" } : { model: key.slice(0, colon), version: key.slice(colon + 1) };
}

/** The router's Prometheus series and trace spans. */
export class RouterMetrics implements QueryObserver {
  private readonly queries: prom.Counter<"application" | "model" | "version" | "outcome" | "reason">;
  private readonly queryDuration: prom.Histogram<"application" | "model" | "version">;
  private readonly queueWait: prom.Histogram<"application" | "model" | "version">;
  private readonly modelDuration: prom.Histogram<"model" | "version" | "outcome">;
  private readonly batchSize: prom.Histogram<"model" | "version">;
  private readonly inFlight: prom.Gauge<"model" | "version" | "replica">;
  private readonly feedback: prom.Counter<"application">;
  private readonly feedbackLoss: prom.Histogram<"application" | "model" | "version">;
  /**
   * "application\0model key" pairs whose histograms exist, observed or created at zero: zero() empties a histogram,
   * so a pair is zeroed only while it has none.
   */
  private readonly queryHistogramsExist = new Set<string>();
  private readonly lossHistogramsExist = new Set<string>();
  /** What follow() created series for already (it runs on every configuration change: replica reports included). */
  private readonly followed = new Set<string>();
  /** Children of the per-query series by their label values: prom-client hashes a label object on every call otherwise. */
  private readonly queryChildren = new Map<string, { duration: prom.Histogram.Internal<string>; wait: prom.Histogram.Internal<string> }>();
  private readonly outcomeChildren = new Map<string, prom.Counter.Internal>();

  constructor(registry: prom.Registry, options: RouterMetricsOptions = {}) {
    const buckets = [...(options.latencyBuckets ?? defaultLatencyBuckets)];
    this.queries = new prom.Counter({
      name: "clipper_router_queries_total",
      help: "Queries (inputs) answered, by application, model version, outcome (answered, default, shed) and reason (predicted, cached, slo_exceeded, no_model, ...).",
      labelNames: ["application", "model", "version", "outcome", "reason"],
      registers: [registry],
    });
    this.queryDuration = new prom.Histogram({
      name: "clipper_router_query_duration_seconds",
      help: "Time from a query's arrival at the router to its answer, by application and model version.",
      labelNames: ["application", "model", "version"],
      buckets,
      registers: [registry],
    });
    this.queueWait = new prom.Histogram({
      name: "clipper_router_queue_wait_seconds",
      help: "Time from a query's arrival at the router to the dispatch of a batch holding it (once per dispatch).",
      labelNames: ["application", "model", "version"],
      buckets,
      registers: [registry],
    });
    this.modelDuration = new prom.Histogram({
      name: "clipper_router_model_duration_seconds",
      help: "Time in the model: from sending a batch to a replica to its answer, by model version and outcome (ok or the error).",
      labelNames: ["model", "version", "outcome"],
      buckets,
      registers: [registry],
    });
    this.batchSize = new prom.Histogram({
      name: "clipper_router_batch_size",
      help: "Inputs per batch sent to a model replica, by model version.",
      labelNames: ["model", "version"],
      buckets: [...batchSizeBuckets],
      registers: [registry],
    });
    this.inFlight = new prom.Gauge({
      name: "clipper_router_inflight_batches",
      help: "Batches sent to a replica and not answered yet, by model version and replica endpoint.",
      labelNames: ["model", "version", "replica"],
      registers: [registry],
    });
    this.feedback = new prom.Counter({
      name: "clipper_router_feedback_total",
      help: "Labelled inputs accepted as feedback, by application.",
      labelNames: ["application"],
      registers: [registry],
    });
    this.feedbackLoss = new prom.Histogram({
      name: "clipper_router_feedback_loss",
      help: "Loss (0 right to 1 wrong, the application's loss function) of a model version's output against a feedback label, by application and model version; only outputs joined through the cache, for learning policies.",
      labelNames: ["application", "model", "version"],
      buckets: LOSS_BUCKETS,
      registers: [registry],
    });
    const queues = options.queues;
    if (queues !== undefined) {
      new prom.Gauge({
        name: "clipper_router_queue_depth",
        help: "Queries waiting in each model version's batch queue.",
        labelNames: ["model", "version"],
        registers: [registry],
        collect() {
          this.reset();
          for (const [key, { depth }] of queues()) this.set(modelLabels(key), depth);
        },
      });
      // The bound as a series of its own, so an alert can compare the depth with it (max_queue_length or --max-queue-length).
      new prom.Gauge({
        name: "clipper_router_queue_capacity",
        help: "Queries a model version's batch queue holds before new ones are refused (its max_queue_length, or --max-queue-length).",
        labelNames: ["model", "version"],
        registers: [registry],
        collect() {
          this.reset();
          for (const [key, { capacity }] of queues()) this.set(modelLabels(key), capacity);
        },
      });
    }
    const cacheStats = options.cacheStats;
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

  requestStarted(application: string): RequestObservation {
    return new ObservedRequest(this, application, trace.getActiveSpan());
  }

  batchSent(modelKey: string, replica: string, size: number, requests: readonly (RequestObservation | undefined)[]): BatchObservation {
    const labels = modelLabels(modelKey);
    const sentAt = performance.now();
    this.batchSize.observe(labels, size);
    const replicaLabels = { ...labels, replica };
    this.inFlight.inc(replicaLabels);
    const seen = new Set<ObservedRequest>();
    for (const r of requests) {
      if (!(r instanceof ObservedRequest)) continue;
      const waitSeconds = (sentAt - r.startedAt) / 1000;
      this.childrenOf(r.application, modelKey).wait.observe(waitSeconds);
      if (!seen.has(r)) {
        seen.add(r);
        r.span?.addEvent("batch dispatched", {
          [TraceAttributes.queueWaitSeconds]: waitSeconds,
          [TraceAttributes.batchSize]: size,
          [TraceAttributes.replica]: replica,
        });
      }
    }
    const span = tracingEnabled() ? this.batchSpan(labels, size, replica, seen) : undefined;
    const batchContext = span === undefined ? undefined : trace.setSpan(traceContext.active(), span);
    let ended = false;
    return {
      run: (call) => (batchContext === undefined ? call() : traceContext.with(batchContext, call)),
      ended: (error) => {
        if (ended) return;
        ended = true;
        this.inFlight.dec(replicaLabels);
        this.modelDuration.observe({ ...labels, outcome: error === undefined ? "ok" : "error" }, (performance.now() - sentAt) / 1000);
        if (error !== undefined) span?.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        span?.end();
      },
    };
  }

  /**
   * One model call serves many queries: its span is the child of the first
   * query's span (so a lone query reads as one chain) and links to the others'.
   */
  private batchSpan(labels: { model: string; version: string }, size: number, replica: string, requests: ReadonlySet<ObservedRequest>): Span {
    const spans = [...requests].map((r) => r.span).filter((s): s is Span => s !== undefined);
    const parentSpan = spans[0];
    const parent = parentSpan ? trace.setSpan(traceContext.active(), parentSpan) : traceContext.active();
    const links: SpanLink[] = spans.slice(1).map((s) => ({ context: s.spanContext() }));
    return tracer().startSpan(
      "clipper.router/batch",
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [TraceAttributes.model]: labels.model,
          [TraceAttributes.version]: labels.version,
          [TraceAttributes.batchSize]: size,
          [TraceAttributes.replica]: replica,
          "clipper.batch_requests": requests.size,
        },
        links,
      },
      parent,
    );
  }

  countFeedback(application: string, accepted: number, losses: FeedbackLosses): void {
    this.feedback.inc({ application }, accepted);
    for (const [key, values] of losses) {
      this.lossHistogramsExist.add(`${application}\u0000${key}`);
      const child = this.feedbackLoss.labels({ application, ...modelLabels(key) });
      for (const value of values) child.observe(value);
    }
  }

  /**
   * Creates at zero the series each application's queries and feedback will have, from the configuration (call it
   * on every change, before queries see the change): the label sets are known once a model version is linked.
   */
  follow(view: ConfigView): void {
    for (const app of view.applications.values()) {
      const application = app.name;
      const keys: Array<string | undefined> = [];
      for (const model of app.linkedModels) {
        const version = view.currentVersions.get(model);
        keys.push(version === undefined ? undefined : modelKey(model, version));
      }
      if (keys.length === 0) keys.push(undefined);
      for (const key of keys) {
        // What decides the series: the pair, whether the application caches, and its policy (whether it learns).
        const seen = `${application}\u0000${key ?? (app.linkedModels.length === 0 ? "no_model" : "no_version")}\u0000${app.cacheEnabled}\u0000${app.policy?.kind.case ?? ""}`;
        if (this.followed.has(seen)) continue;
        this.followed.add(seen);
        this.feedback.inc({ application }, 0);
        const labels = { application, ...modelLabels(key) };
        if (key === undefined) {
          this.queries.inc({ ...labels, outcome: "default", reason: app.linkedModels.length === 0 ? "no_model" : "no_version" }, 0);
          continue;
        }
        const reasons = app.cacheEnabled ? [...RESOLVED_REASONS, "cached" as const] : RESOLVED_REASONS;
        for (const reason of reasons) this.outcomeCounter(application, key, reason).inc(0);
        this.queries.inc({ ...labels, outcome: "shed", reason: "refused" }, 0);
        const id = `${application}\u0000${key}`;
        if (!this.queryHistogramsExist.has(id)) {
          this.queryHistogramsExist.add(id);
          this.queryDuration.zero(labels);
          this.queueWait.zero(labels);
        }
        if (applicationPolicy(app).learns && !this.lossHistogramsExist.has(id)) {
          this.lossHistogramsExist.add(id);
          this.feedbackLoss.zero(labels);
        }
      }
    }
  }

  /** @internal by ObservedRequest */
  recordAnswers(application: string, modelKey: string | undefined, outcomes: readonly QueryOutcome[], seconds: number): void {
    if (outcomes.length === 1 && outcomes[0]) {
      this.outcomeCounter(application, modelKey, outcomes[0]).inc();
    } else {
      const counts = new Map<QueryOutcome, number>();
      for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
      for (const [reason, n] of counts) this.outcomeCounter(application, modelKey, reason).inc(n);
    }
    const duration = this.childrenOf(application, modelKey).duration;
    for (let i = 0; i < outcomes.length; i++) duration.observe(seconds);
  }

  private childrenOf(application: string, modelKey: string | undefined) {
    const key = `${application}\u0000${modelKey ?? ""}`;
    let children = this.queryChildren.get(key);
    if (children === undefined) {
      this.queryHistogramsExist.add(key);
      const labels = { application, ...modelLabels(modelKey) };
      children = { duration: this.queryDuration.labels(labels), wait: this.queueWait.labels(labels) };
      this.queryChildren.set(key, children);
    }
    return children;
  }

  private outcomeCounter(application: string, modelKey: string | undefined, reason: QueryOutcome) {
    const key = `${application}\u0000${modelKey ?? ""}\u0000${reason}`;
    let child = this.outcomeChildren.get(key);
    if (child === undefined) {
      child = this.queries.labels({ application, ...modelLabels(modelKey), outcome: outcomeLabel(reason), reason });
      this.outcomeChildren.set(key, child);
    }
    return child;
  }

  /** @internal by ObservedRequest */
  recordRefused(application: string, modelKey: string | undefined, queries: number): void {
    this.queries.inc({ application, ...modelLabels(modelKey), outcome: "shed", reason: "refused" }, queries);
  }
}

/** One request on its way through the router: its labels, start time and trace span. */
class ObservedRequest implements RequestObservation {
  readonly startedAt = performance.now();
  private modelKey: string | undefined;
  private done = false;

  constructor(
    private readonly metrics: RouterMetrics,
    readonly application: string,
    readonly span: Span | undefined,
  ) {
    span?.setAttribute(TraceAttributes.application, application);
  }

  routed(modelKey: string): void {
    this.modelKey = modelKey;
    const { model, version } = modelLabels(modelKey);
    this.span?.setAttributes({ [TraceAttributes.model]: model, [TraceAttributes.version]: version });
  }

  answered({ results, outcomes }: Answers): void {
    if (this.done) return;
    this.done = true;
    this.metrics.recordAnswers(this.application, this.modelKey, outcomes, (performance.now() - this.startedAt) / 1000);
    const span = this.span;
    if (span === undefined) return;
    const firstDefault = results.findIndex((r) => r.default);
    const defaulted = results[firstDefault];
    span.setAttributes({
      [TraceAttributes.inputs]: results.length,
      [TraceAttributes.cacheHit]: outcomes.length > 0 && outcomes.every((o) => o === "cached"),
      [TraceAttributes.isDefault]: defaulted !== undefined,
      ...(results.length === 1 && results[0] ? { [TraceAttributes.queryId]: results[0].queryId.toString() } : {}),
      ...(defaulted ? { [TraceAttributes.defaultReason]: outcomes[firstDefault] ?? "", "clipper.default_explanation": defaulted.defaultExplanation } : {}),
    });
  }

  refused(queries: number): void {
    if (this.done) return;
    this.done = true;
    this.metrics.recordRefused(this.application, this.modelKey, queries);
  }
}
