// The registry's composition root: `node --import tsx services/registry/main.ts [--flag value ...]`.
// Once serving it logs one JSON line {"msg":"listening","port":N,"metricsPort":M,...} on stdout;
// with --port 0 that line is how a supervisor learns the port.
import { join } from "node:path";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import {
  createLogger,
  createMetricsRegistry,
  exitOnStartupError,
  latencyBucketsOption,
  loadServiceConfig,
  onShutdownSignal,
  registration,
  securityOptions,
  serverSecurity,
  startGrpcServer,
  startMetricsServer,
  startTracing,
} from "../shared/index.js";
import { registryConfigSpec } from "./config.js";
import { LmdbStore } from "./lmdb-store.js";
import { RedisStore } from "./redis-store.js";
import { Registry } from "./registry.js";
import { RegistryMetrics } from "./registry-metrics.js";
import { createManagementService } from "./service.js";
import type { RegistryStore } from "./store.js";

async function main(): Promise<void> {
  const config = loadServiceConfig("registry", {
    ...registryConfigSpec,
    latencyBuckets: latencyBucketsOption,
    tokensFile: securityOptions.tokensFile(),
    insecure: securityOptions.insecure(),
    tlsCert: securityOptions.tlsCert(),
    tlsKey: securityOptions.tlsKey(),
    tlsCa: securityOptions.tlsCa(),
  });
  const logger = createLogger({ service: "registry" });
  const tracing = startTracing("registry");
  // Checked before the store opens: a refused configuration changes nothing.
  const security = serverSecurity("registry", config);

  const metrics = createMetricsRegistry("registry");
  const registryMetrics = new RegistryMetrics(metrics, { revision: () => registry.revision, watchers: () => registry.watchers }, config.latencyBuckets);
  const rawStore: RegistryStore =
    config.store === "redis"
      ? await RedisStore.open({ url: config.redisUrl, prefix: config.redisPrefix, logger })
      : LmdbStore.open(join(config.dataDir, "registry"));
  const store = registryMetrics.timed(rawStore);
  const registry = await Registry.open({
    store,
    logger,
    limits: { maxApplications: config.maxApplications, maxModelVersions: config.maxModelVersions, maxDesiredReplicas: config.maxDesiredReplicas },
    policyStateBounds: { maxUsers: config.maxPolicyUsers, maxUserBytes: config.maxPolicyStateBytes },
  });

  const server = await startGrpcServer({
    host: config.host,
    port: config.port,
    reflection: true,
    logger,
    ...security.grpc,
    services: [registration(ManagementService, createManagementService(registry))],
  });
  const metricsServer = await startMetricsServer(metrics, config.host, config.metricsPort);
  logger.info(
    {
      port: server.port,
      metricsPort: metricsServer.port,
      host: config.host,
      store: config.store,
      revision: registry.revision.toString(),
      auth: security.grpc.authorize !== undefined,
      tls: security.tls !== undefined,
    },
    "listening",
  );

  onShutdownSignal(logger, async () => {
    // Ending watches first lets their clients see UNAVAILABLE and reconnect elsewhere promptly.
    registry.endWatches();
    await server.close();
    await registry.close();
    await metricsServer.close();
    await tracing?.shutdown();
  });
}

main().catch(exitOnStartupError);
