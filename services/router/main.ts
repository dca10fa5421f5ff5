import {
  commonOptions,
  createLogger,
  createMetricsRegistry,
  defaults,
  exitOnStartupError,
  loadServiceConfig,
  onShutdownSignal,
  parse,
  startMetricsServer,
} from "../shared/index.js";
import { startRouter } from "./router.js";

const spec = {
  host: commonOptions.host("CLIPPER_ROUTER"),
  port: commonOptions.port("CLIPPER_ROUTER", defaults.routerPort, "gRPC port (QueryService)"),
  metricsPort: commonOptions.metricsPort("CLIPPER_ROUTER", defaults.routerMetricsPort),
  registry: commonOptions.registry(),
  maxBatch: { flag: "max-batch", env: "CLIPPER_ROUTER_MAX_BATCH", default: 10_000, parse: parse.int(1, 1_000_000), help: "most inputs in one query" },
  maxInputSize: {
    flag: "max-input-size",
    env: "CLIPPER_ROUTER_MAX_INPUT_SIZE",
    default: 1_048_576,
    parse: parse.int(1, 64 * 1_048_576),
    help: "largest single input: values for numeric types, bytes for bytes and strings",
  },
  maxWaitMs: {
    flag: "max-wait-ms",
    env: "CLIPPER_ROUTER_MAX_WAIT_MS",
    default: 60_000,
    parse: parse.int(1, 3_600_000),
    help: "longest wait for a query whose application has no SLO and whose caller sets no deadline",
  },
};

async function main(): Promise<void> {
  const config = loadServiceConfig("router", spec);
  const logger = createLogger({ service: "router" });
  const metrics = createMetricsRegistry("router");
  const router = await startRouter({
    host: config.host,
    port: config.port,
    registry: config.registry,
    limits: { maxBatch: config.maxBatch, maxInputSize: config.maxInputSize },
    maxWaitMs: config.maxWaitMs,
    logger,
    metrics,
  });
  const metricsServer = await startMetricsServer(metrics, config.host, config.metricsPort);
  logger.info({ port: router.port, metricsPort: metricsServer.port, registry: config.registry }, "listening");
  onShutdownSignal(logger, async () => {
    await router.close();
    await metricsServer.close();
  });
}

main().catch(exitOnStartupError);
