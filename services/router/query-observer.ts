import type { QueryResult } from "../../gen/clipper/v1/query_service_pb.js";

/** How one query was answered; the metrics label. */
export type QueryOutcome =
  | "predicted"
  | "cached"
  | "slo_exceeded"
  /** Taken from the queue before its deadline: no batch could have answered it in time any more (overload). */
  | "hopeless"
  | "cancelled"
  | "overloaded"
  | "no_model"
  | "no_version"
  | "no_replica"
  | "model_error"
  | "batch_failed";

/**
 * The answers of one request: the QueryResults the router sends (the one
 * shape of an answer inside the system), and how each was reached, for the
 * metrics alone (never on the wire).
 */
export interface Answers {
  readonly results: QueryResult[];
  /** outcomes[i] is how results[i] was reached. */
  readonly outcomes: readonly QueryOutcome[];
}

/**
 * What the query path tells its observer (metrics and traces), so that the
 * processor knows nothing of Prometheus or OpenTelemetry. Every call is cheap
 * and synchronous.
 */
export interface QueryObserver {
  /** A request of `application` was accepted; called in the caller's async context (its trace span). */
  requestStarted(application: string): RequestObservation;
  /** A batch goes to `replica`; `requests` holds each item's request, in batch order. */
  batchSent(modelKey: string, replica: string, size: number, requests: readonly (RequestObservation | undefined)[]): BatchObservation;
}

export interface RequestObservation {
  /** The model version the request was routed to. */
  routed(modelKey: string): void;
  /** Every query of the request has its answer. */
  answered(answers: Answers): void;
  /** The request was refused as a whole because the queue was full (RESOURCE_EXHAUSTED). */
  refused(queries: number): void;
}

export interface BatchObservation {
  /** Runs the model call with the batch's span active, so its `traceparent` reaches the replica. */
  run<T>(call: () => T): T;
  /** The model call ended: `error` undefined when it answered. */
  ended(error: unknown): void;
}
