import {
  assertLoopbackOrInsecure,
  clientSecurity,
  createLogger,
  createMetricsRegistry,
  exitOnStartupError,
  loadServiceConfig,
  loadTlsMaterial,
  mutualTlsServerCredentials,
  onShutdownSignal,
  startMetricsServer,
  startTracing,
} from "../shared/index.js";
import { routerCoreSettings, routerSpec } from "./config.js";
import { startRouter } from "./router.js";

async function main(): Promise<void> {
  const config = loadServiceConfig("router", routerSpec);
  const logger = createLogger({ service: "router" });
  const tracing = startTracing("router");
  // Gateways authenticate to the router by mutual TLS (they carry no token); without TLS it stays on loopback.
  const tls = loadTlsMaterial({ cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa });
  if (tls === undefined) assertLoopbackOrInsecure("router", config.host, config.insecure, "without --tls-cert (mutual TLS with gateways)");
  const metrics = createMetricsRegistry("router");
  const router = await startRouter({
    host: config.host,
    port: config.port,
    registry: config.registry,
    ...routerCoreSettings(config),
    serverSecurity: tls === undefined ? {} : { credentials: mutualTlsServerCredentials(tls) },
    registrySecurity: clientSecurity({ tls, token: config.serviceToken }),
    logger,
    metrics,
  });
  const metricsServer = await startMetricsServer(metrics, config.host, config.metricsPort);
  logger.info({ port: router.port, metricsPort: metricsServer.port, registry: config.registry, tracing: tracing !== undefined }, "listening");
  onShutdownSignal(logger, async () => {
    await router.close();
    await metricsServer.close();
    await tracing?.shutdown();
  });
}

main().catch(exitOnStartupError);
