import {
  createLogger,
  createMetricsRegistry,
  defaults,
  exitOnStartupError,
  loadConfig,
  onShutdownSignal,
  parse,
  startMetricsServer,
  usage,
} from "../shared/index.js";
import { startRouter } from "./router.js";

const spec = {
  host: { flag: "host", env: "CLIPPER_ROUTER_HOST", default: "127.0.0.1", parse: parse.string, help: "address to listen on" },
  port: { flag: "port", env: "CLIPPER_ROUTER_PORT", default: defaults.routerPort as number, parse: parse.port, help: "gRPC port (QueryService)" },
  metricsPort: {
    flag: "metrics-port",
    env: "CLIPPER_ROUTER_METRICS_PORT",
    default: defaults.routerMetricsPort as number,
    parse: parse.port,
    help: "Prometheus /metrics port",
  },
  registry: {
    flag: "registry",
    env: "CLIPPER_REGISTRY",
    default: `127.0.0.1:${defaults.registryPort}`,
    parse: parse.address,
    help: "host:port of the registry",
  },
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
  if (process.argv.includes("--help")) {
    process.stdout.write(usage("router", spec));
    return;
  }
  const config = loadConfig("router", spec);
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
