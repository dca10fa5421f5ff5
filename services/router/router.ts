import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import {
  type InputLimits,
  type Logger,
  type prom,
  registration,
  startGrpcServer,
  watchConfig,
} from "../shared/index.js";
import { type Clock, systemClock } from "./clock.js";
import { FeedbackRecorder } from "./feedback.js";
import { ReplicaClientPool, replicaEndpoints } from "./model-clients.js";
import { FirstLinkedModelSelector } from "./model-selector.js";
import { QueryProcessor } from "./query-processor.js";
import { RoundRobinReplicaPicker } from "./replica-picker.js";
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
}

export interface RunningRouter {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

/** Wires the router: config watch, replica channels, query processor, gRPC server. */
export async function startRouter(options: RouterOptions): Promise<RunningRouter> {
  const watcher = watchConfig({ registry: options.registry, logger: options.logger });
  let configReady = false;
  void watcher.ready.then(() => (configReady = true));
  const config = () => (configReady ? watcher.view() : undefined);
  const pool = new ReplicaClientPool();
  const picker = new RoundRobinReplicaPicker();
  const stopFollowing = watcher.onChange((view) => {
    pool.retain(replicaEndpoints(view));
    picker.retain(new Set(view.replicaSets.keys()));
  });
  const processor = new QueryProcessor({
    config,
    models: pool,
    selector: new FirstLinkedModelSelector(),
    replicas: picker,
    clock: options.clock ?? systemClock,
    limits: options.limits,
    maxWaitMs: options.maxWaitMs,
  });
  const impl = createQueryServiceImpl({
    processor,
    feedback: new FeedbackRecorder(config, options.limits),
    metrics: new RouterMetrics(options.metrics),
  });
  const server = await startGrpcServer({
    host: options.host,
    port: options.port,
    reflection: true,
    logger: options.logger,
    services: [registration(QueryService, impl)],
  });
  return {
    port: server.port,
    address: server.address,
    async close() {
      await server.close();
      stopFollowing();
      watcher.close();
      pool.close();
    },
  };
}
