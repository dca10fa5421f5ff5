import type { Inputs } from "../../gen/clipper/common/v1/data_pb.js";
import type { QueryResult } from "../../gen/clipper/v1/query_service_pb.js";
import type { Application } from "../../gen/clipper/v1/resources_pb.js";
import {
  type CancelSignal,
  type ConfigView,
  inputCount,
  notFound,
  resourceExhausted,
  SpanKind,
  TraceAttributes,
  toAbortSignal,
  trace,
  tracingEnabled,
  unavailable,
  withSpan,
} from "../shared/index.js";
import type { RouterLink } from "./router-link.js";

export interface QueryCallOptions {
  version: string;
  uid: string;
  /** What is left of the caller's deadline, if it set one. */
  timeoutMs: number | undefined;
  /**
   * performance.now() when the request arrived: the application's SLO counts
   * from then, not from when the router sees it (time spent reading and
   * parsing under load is part of what the caller waits).
   */
  receivedAt?: number;
  signal: CancelSignal | undefined;
  /**
   * A low-priority call (OIP `priority` 2 and lower) is admitted only while
   * fewer than half (rounded up) of --max-in-flight queries are open: under
   * load it is shed first, keeping the rest of the bound for normal calls.
   */
  lowPriority?: boolean;
}

export interface PredictorOptions {
  /** Undefined until the first snapshot from the registry has arrived. */
  config: () => ConfigView | undefined;
  /** Queries and feedback go to the router through it. */
  router: Pick<RouterLink, "query" | "feedback" | "overloadReason">;
  /** The router call's deadline when the caller sets none; the router's SLO normally answers well before. */
  defaultTimeoutMs: number;
  /** Router calls open at once; past it a call is shed with RESOURCE_EXHAUSTED (HTTP 429) instead of queueing without bound. Default: no bound. */
  maxInFlight?: number;
}

/**
 * What every protocol of the gateway does with a request once parsed: find
 * the application in the config view, then ask the router.
 */
export class Predictor {
  private inFlight = 0;
  private readonly config: () => ConfigView | undefined;
  private readonly router: Pick<RouterLink, "query" | "feedback" | "overloadReason">;
  private readonly defaultTimeoutMs: number;
  private readonly maxInFlight: number;

  constructor(options: PredictorOptions) {
    this.config = options.config;
    this.router = options.router;
    this.defaultTimeoutMs = options.defaultTimeoutMs;
    this.maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  }

  /** Router calls open right now. */
  get queriesInFlight(): number {
    return this.inFlight;
  }

  /** The application, or NOT_FOUND without a round trip to the router. */
  application(name: string): Application {
    const view = this.config();
    if (view === undefined) throw unavailable("the gateway has not received the configuration from the registry yet");
    const app = view.applications.get(name);
    if (app === undefined) throw notFound(`application "${name}" not found`);
    return app;
  }

  /** One prediction request: the gateway's span of its trace (a child of the caller's gRPC span, or the root for REST). */
  query(application: string, inputs: Inputs, options: QueryCallOptions): Promise<QueryResult[]> {
    // With tracing off (the default) no span and no attributes: this is every query's path.
    if (!tracingEnabled()) return this.routed(application, inputs, options);
    const attributes = { [TraceAttributes.application]: application, [TraceAttributes.inputs]: inputCount(inputs) };
    const kind = trace.getActiveSpan() === undefined ? SpanKind.SERVER : SpanKind.INTERNAL;
    return withSpan("clipper.gateway/predict", { kind, attributes }, async (span) => {
      const results = await this.routed(application, inputs, options);
      const firstDefault = results.find((r) => r.default);
      span.setAttribute(TraceAttributes.isDefault, firstDefault !== undefined);
      if (results.length === 1 && results[0]) span.setAttribute(TraceAttributes.queryId, results[0].queryId.toString());
      return results;
    });
  }

  private routed(application: string, inputs: Inputs, options: QueryCallOptions): Promise<QueryResult[]> {
    return this.admitted(
      () => this.router.query({ application, inputs, version: options.version, uid: options.uid }, this.timeoutOf(application, options), options.signal),
      options.lowPriority === true,
    );
  }

  /** The router call's deadline: the caller's, or the default, and never past the application's SLO counted from the request's arrival. */
  private timeoutOf(application: string, options: QueryCallOptions): number {
    const caller = options.timeoutMs ?? this.defaultTimeoutMs;
    if (options.receivedAt === undefined) return caller;
    const sloMicros = this.config()?.applications.get(application)?.sloMicros ?? 0n;
    if (sloMicros <= 0n) return caller;
    return Math.max(1, Math.min(caller, Number(sloMicros) / 1000 - (performance.now() - options.receivedAt)));
  }

  /**
   * Why a query of the application would be refused for overload right now,
   * when the router can tell before the request's body is read (a router in
   * this process); the protocol handlers then answer 429 / RESOURCE_EXHAUSTED
   * having spent next to nothing on it.
   */
  shedReason(application: string): string | undefined {
    return this.router.overloadReason?.(application);
  }

  async feedback(application: string, inputs: Inputs, labels: string[], uid: string, signal: CancelSignal | undefined): Promise<number> {
    const res = await this.admitted(() =>
      this.router.feedback.submitFeedback(
        { application, inputs, labels, uid },
        { timeoutMs: this.defaultTimeoutMs, ...(signal ? { signal: toAbortSignal(signal) } : {}) },
      ),
    );
    return res.accepted;
  }

  private async admitted<T>(call: () => Promise<T>, lowPriority = false): Promise<T> {
    if (this.inFlight >= this.maxInFlight) {
      throw resourceExhausted(`the gateway is answering its limit of ${this.maxInFlight} queries at once (--max-in-flight); retry shortly`);
    }
    if (lowPriority && this.inFlight >= Math.ceil(this.maxInFlight / 2)) {
      throw resourceExhausted(
        `the gateway is answering ${this.inFlight} queries at once, the half of its --max-in-flight (${this.maxInFlight}) open to low-priority calls; retry shortly or raise the priority`,
      );
    }
    this.inFlight++;
    try {
      return await call();
    } finally {
      this.inFlight--;
    }
  }
}
