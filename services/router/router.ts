import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import {
  type InputLimits,
  type Logger,
  type prom,
  registration,
  startGrpcServer,
  watchConfig,
  type ClientSecurity,
  type ServerSecurity,
} from "../shared/index.js";
import { type Clock, systemClock } from "./clock.js";
import { FeedbackRecorder } from "./feedback.js";
import { ReplicaClientPool, replicaEndpoints } from "./model-clients.js";
import { FirstLinkedModelSelector } from "./model-selector.js";
import { PredictionCache } from "./prediction-cache.js";
import { type BatchingDefaults, defaultBatchingDefaults, QueryProcessor } from "./query-processor.js";
import { RouterMetrics } from "./router-metrics.js";
import { createQueryServiceImpl } from "./service.js";

export interface RouterOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** host:port of the registry. */
  registry: string;
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
  /** TLS and token checks of the router's own server (mutual TLS with gateways). */
  serverSecurity?: ServerSecurity;
  /** How the router reaches the registry: client certificate and service token. */
  registrySecurity?: ClientSecurity;
}

export interface RunningRouter {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

/** Wires the router: config watch, replica channels, prediction cache, query processor, gRPC server. */
export async function startRouter(options: RouterOptions): Promise<RunningRouter> {
  const watcher = watchConfig({
    registry: options.registry,
    logger: options.logger,
    ...(options.registrySecurity ? { security: options.registrySecurity } : {}),
  });
  let configReady = false;
  void watcher.ready.then(() => (configReady = true));
  const config = () => (configReady ? watcher.view() : undefined);
  const pool = new ReplicaClientPool();
  const cache = new PredictionCache({ maxBytes: options.cacheBytes ?? 64 * 1024 * 1024 });
  const processor = new QueryProcessor({
    config,
    models: pool,
    selector: new FirstLinkedModelSelector(),
    clock: options.clock ?? systemClock,
    limits: options.limits,
    maxWaitMs: options.maxWaitMs,
    batching: options.batching ?? defaultBatchingDefaults,
    cache,
    // Batches are only sent once the server serves, after routerMetrics exists.
    onBatch: (model, size) => routerMetrics.observeBatch(model, size),
  });
  const routerMetrics = new RouterMetrics(options.metrics, { cacheStats: () => cache.stats(), queueLengths: () => processor.queueLengths() });
  const stopFollowing = watcher.onChange((view) => {
    pool.retain(replicaEndpoints(view));
    processor.onConfig(view);
  });
  const impl = createQueryServiceImpl({
    processor,
    feedback: new FeedbackRecorder(config, options.limits),
    metrics: routerMetrics,
  });
  const server = await startGrpcServer({
    host: options.host,
    port: options.port,
    reflection: true,
    logger: options.logger,
    ...options.serverSecurity,
    services: [registration(QueryService, impl)],
  });
  return {
    port: server.port,
    address: server.address,
    async close() {
      await server.close();
      stopFollowing();
      watcher.close();
      processor.close();
      pool.close();
    },
  };
}
