/**
 * The console's JSON API, as the page sees it: types only (the page imports
 * them, so this file has no runtime code and no imports).
 */

export type ConsoleRole = "admin" | "read-only" | "service" | "open";

/** GET /api/session: who the caller's token belongs to. "open": the console checks no tokens. */
export interface SessionInfo {
  role: ConsoleRole;
  name: string;
  /** Whether this role may change anything (admin, or open), and why not otherwise. */
  canWrite: boolean;
  readOnlyReason?: string;
}

export type PolicyJson =
  | { kind: "single" }
  | { kind: "split"; weights: Record<string, number> }
  | { kind: "exp3"; gamma: number }
  | { kind: "exp4"; eta: number }
  | { kind: "epsilon_greedy"; epsilon: number }
  | { kind: "thompson" };

export interface ApplicationJson {
  name: string;
  inputType: string;
  defaultOutput: string;
  sloMicros: number;
  linkedModels: string[];
  policy: PolicyJson;
  cacheEnabled: boolean;
  description: string;
}

export interface BatchingJson {
  maxBatchSize: number;
  /** null: the router chooses. */
  maxWaitMicros: number | null;
  maxInFlightPerReplica: number;
  maxQueueLength: number;
  fixedSize: boolean;
}

export type ReplicaStateName = "starting" | "ready" | "unhealthy" | "failed" | "stopping" | "unknown";

export interface ReplicaJson {
  id: string;
  endpoint: string;
  state: ReplicaStateName;
  restarts: number;
  message: string;
  startedAtMs: number;
}

export interface ModelVersionJson {
  name: string;
  version: string;
  inputType: string;
  runtime: string;
  current: boolean;
  desiredReplicas: number;
  batching: BatchingJson;
  createdAtMs: number;
  replicas: ReplicaJson[];
}

/** GET /api/state and the SSE "state" event: the registry's configuration as the console's watch sees it. */
export interface ConsoleState {
  revision: string;
  /** Whether the console's WatchConfig stream to the registry is connected now. */
  registryConnected: boolean;
  applications: ApplicationJson[];
  models: ModelVersionJson[];
}

/** One metrics target the console scrapes, and whether the last scrape worked. */
export interface TargetStatus {
  name: string;
  url: string;
  up: boolean;
  error?: string;
}

/** Rates over the last window, per application. null: no traffic to compute it from. */
export interface ApplicationFrame {
  /** Queries (inputs) per second answered by the router. */
  throughput: number;
  /** Seconds; from the router's query duration histogram. */
  p50: number | null;
  p99: number | null;
  /** Fraction of queries answered with the default output. */
  defaultRate: number | null;
  /** Fraction of gateway requests that failed. */
  errorRate: number | null;
}

export interface ModelFrame {
  /** Mean inputs per batch over the window. */
  meanBatchSize: number | null;
  batchesPerSecond: number;
  queueDepth: number | null;
  /** Batches sent and not answered yet, by replica endpoint (the router's clipper_router_inflight_batches). */
  inFlightBatches: Record<string, number>;
}

/** A model's loss on the feedback (labels) its application received: 0 right, 1 wrong, by the application's loss function. */
export interface FeedbackLossJson {
  /** Mean loss of the outputs judged within the last window; null when no feedback came. */
  recent: number | null;
  /** Mean loss of every output judged since the router started; null before any. */
  overall: number | null;
  /** Outputs judged since the router started. */
  count: number;
}

/** One scrape's worth of computed numbers (SSE "frame"). */
export interface MetricsFrame {
  atMs: number;
  /** By application name. */
  applications: Record<string, ApplicationFrame>;
  /** By "model:version". */
  models: Record<string, ModelFrame>;
  /** Hits / (hits + misses) over the window; null without lookups or without a cache. */
  cacheHitRatio: number | null;
  /** By application with a learning policy, then linked model: its probability, weight or mean reward (policy-weights.ts). */
  policies: Record<string, Record<string, number>>;
  /** By application, then model (all its versions): the router's clipper_router_feedback_loss. */
  feedbackLoss: Record<string, Record<string, FeedbackLossJson>>;
  targets: TargetStatus[];
}

/** The SSE "hello" event: what a page needs to draw at once. */
export interface HelloEvent {
  state: ConsoleState;
  history: MetricsFrame[];
}

/** Every error the API answers. */
export interface ApiError {
  error: string;
  /** The registry's gRPC code, when it refused. */
  code?: string;
}

/** GET /api/models/NAME/versions/V/logs: the last lines each replica wrote (the container-manager keeps them). */
export interface ReplicaLogsJson {
  logs: Array<{ replicaId: string; lines: string[] }>;
}
