import { type Client, createClient, type ServiceImpl } from "@connectrpc/connect";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import type { QueryResult } from "../../gen/clipper/v1/query_service_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import {
  type CancelSignal,
  type ClientSecurity,
  type ConfigWatcher,
  createGrpcTransport,
  type InputLimits,
  type Logger,
  type prom,
  registration,
  type ServerSecurity,
  startGrpcServer,
  watchConfig,
} from "../shared/index.js";
import { applicationPolicy } from "./application-policy.js";
import type { TakeOrder } from "./batching/batch-queue.js";
import { type Clock, systemClock } from "./clock.js";
import { FeedbackRecorder } from "./feedback.js";
import { type ModelCalls, ReplicaClientPool, replicaEndpoints } from "./model-clients.js";
import { PolicySelector } from "./model-selector.js";
import { seededRandom } from "./policies/random.js";
import { PolicyStates, registryPolicyStateBackend } from "./policy-states.js";
import { PredictionCache } from "./prediction-cache.js";
import { type BatchingDefaults, defaultBatchingDefaults, QueryProcessor } from "./query-processor.js";
import { RouterMetrics } from "./router-metrics.js";
import { createQueryServiceImpl, queryResults, type RouterQuery } from "./service.js";

/** The router without its gRPC server: what a gateway running the router in its own process needs. */
export interface RouterCoreOptions {
  /** The registry's configuration: one watcher per process, shared with a gateway in the same process. Not closed by the core. */
  config: ConfigWatcher;
  /** The registry's ManagementService, for learned policy state (on the process's one registry channel). Not closed by the core. */
  registry: Client<typeof ManagementService>;
  limits: InputLimits;
  /** The longest a query waits when neither its application's SLO nor its caller bounds it. */
  maxWaitMs: number;
  logger: Logger;
  metrics: prom.Registry;
  clock?: Clock;
  /** Defaults for the per-model knobs left at 0 (batches in flight per replica, queue length). */
  batching?: BatchingDefaults;
  /** Bound of the prediction cache shared by the applications that enable it. */
  cacheBytes?: number;
  /** Seeds the selection policies' random draws (tests); random otherwise. */
  selectionSeed?: number;
  /** How long learned policy state is used before it is read from the registry again. */
  policyStateTtlMs?: number;
  /** Upper bounds (seconds) of the latency histograms. */
  latencyBuckets?: readonly number[];
  /** Queries open at once on one QueryStream (default 10,000). */
  maxStreamCalls?: number;
  /** How batches reach replicas: on one PredictStream per replica (default), or one unary Predict call each. */
  modelCalls?: ModelCalls;
  /** Which end of an overloaded queue is served (VersionBatcherOptions.overloadOrder; default "latest"). */
  queueUnderOverload?: TakeOrder;
}

export interface RouterOptions extends Omit<RouterCoreOptions, "config" | "registry"> {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** host:port of the registry. */
  registry: string;
  /** How the router reaches the registry: client certificate and service token. */
  registrySecurity?: ClientSecurity;
  /** TLS and token checks of the router's own server (mutual TLS with gateways). */
  serverSecurity?: ServerSecurity;
}

export interface RouterCore {
  /** Why a query of the application would be refused for overload now (QueryProcessor.overloadReason). */
  overloadReason(application: string): string | undefined;
  /** One Query: what the unary handler answers, and what a gateway in the same process calls. */
  query(request: RouterQuery, timeoutMs: number | undefined, signal: CancelSignal | undefined): Promise<QueryResult[]>;
  /** The QueryService handlers over the core. */
  readonly impl: ServiceImpl<typeof QueryService>;
  /** Whether the first configuration from the registry has arrived. */
  configured(): boolean;
  /** Stops the core; the config watcher and the registry client stay with their owner. */
  close(): void;
}

export interface RunningRouter {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

/** Wires the router as its own service: one registry channel (config watch and policy state), the core, its gRPC server. */
export async function startRouter(options: RouterOptions): Promise<RunningRouter> {
  const { host, port, registry, registrySecurity, serverSecurity, ...coreOptions } = options;
  const registryTransport = createGrpcTransport({ address: registry, ...registrySecurity });
  const registryClient = createClient(ManagementService, registryTransport);
  const config = watchConfig({ registry, client: registryClient, logger: options.logger });
  const core = createRouterCore({ ...coreOptions, config, registry: registryClient });
  const server = await startGrpcServer({
    host,
    port,
    reflection: true,
    logger: options.logger,
    ...serverSecurity,
    services: [registration(QueryService, core.impl)],
  });
  return {
    port: server.port,
    address: server.address,
    async close() {
      await server.close();
      core.close();
      config.close();
      registryTransport.close();
    },
  };
}

/** The router's parts below its server: replica channels, prediction cache, selection, query processor, QueryService handlers. */
export function createRouterCore(options: RouterCoreOptions): RouterCore {
  const watcher = options.config;
  const config = () => watcher.current();
  const pool = new ReplicaClientPool({ streams: options.modelCalls !== "unary" });
  const cache = new PredictionCache({ maxBytes: options.cacheBytes ?? 64 * 1024 * 1024 });
  const clock = options.clock ?? systemClock;
  const selector = new PolicySelector({
    states: new PolicyStates({
      backend: registryPolicyStateBackend(options.registry),
      clock,
      ...(options.policyStateTtlMs !== undefined ? { ttlMs: options.policyStateTtlMs } : {}),
    }),
    ...(options.selectionSeed !== undefined ? { random: seededRandom(options.selectionSeed) } : {}),
  });
  const processor = new QueryProcessor({
    config,
    models: pool,
    selector,
    recordForFeedback: (app) => applicationPolicy(app).learns,
    clock,
    limits: options.limits,
    maxWaitMs: options.maxWaitMs,
    batching: options.batching ?? defaultBatchingDefaults,
    ...(options.queueUnderOverload ? { batcher: { overloadOrder: options.queueUnderOverload } } : {}),
    cache,
    // Requests arrive only once the server serves, after routerMetrics exists.
    observer: { requestStarted: (app) => routerMetrics.requestStarted(app), batchSent: (...args) => routerMetrics.batchSent(...args) },
  });
  const routerMetrics = new RouterMetrics(options.metrics, {
    cacheStats: () => cache.stats(),
    queues: () => processor.queues(),
    ...(options.latencyBuckets ? { latencyBuckets: options.latencyBuckets } : {}),
  });
  const stopFollowing = watcher.onChange((view) => {
    routerMetrics.follow(view);
    pool.retain(replicaEndpoints(view));
    processor.onConfig(view);
  });
  const impl = createQueryServiceImpl({
    processor,
    feedback: new FeedbackRecorder(config, options.limits, cache, selector),
    metrics: routerMetrics,
    maxStreamCalls: options.maxStreamCalls ?? 10_000,
    logger: options.logger,
  });
  return {
    query: (request, timeoutMs, signal) => queryResults(processor, request, timeoutMs, signal),
    overloadReason: (application) => processor.overloadReason(application),
    impl,
    configured: () => watcher.current() !== undefined,
    close() {
      stopFollowing();
      processor.close();
      pool.close();
    },
  };
}
