import {
  commonOptions,
  createLogger,
  createMetricsRegistry,
  defaults,
  exitOnStartupError,
  loadServiceConfig,
  onShutdownSignal,
  parse,
} from "../shared/index.js";
import { startGateway } from "./gateway.js";

const spec = {
  host: commonOptions.host("CLIPPER_GATEWAY"),
  port: commonOptions.port("CLIPPER_GATEWAY", defaults.gatewayPort, "port for REST, Connect, gRPC-Web (HTTP/1.1) and gRPC (h2c); /metrics is served here too"),
  router: {
    flag: "router",
    env: "CLIPPER_ROUTER",
    default: `127.0.0.1:${defaults.routerPort}`,
    parse: parse.address,
    help: "host:port of the router",
  },
  registry: commonOptions.registry(),
  maxBodyBytes: {
    flag: "max-body-bytes",
    env: "CLIPPER_GATEWAY_MAX_BODY_BYTES",
    default: 10 * 1_048_576,
    parse: parse.int(1024, 1024 * 1_048_576),
    help: "largest request body or gRPC message accepted",
  },
  allowRaggedBatch: {
    flag: "allow-ragged-batches",
    env: "CLIPPER_GATEWAY_ALLOW_RAGGED_BATCHES",
    default: false,
    parse: parse.bool,
    help: "accept REST numeric batches whose inputs differ in length",
  },
  queryTimeoutMs: {
    flag: "query-timeout-ms",
    env: "CLIPPER_GATEWAY_QUERY_TIMEOUT_MS",
    default: 30_000,
    parse: parse.int(1, 3_600_000),
    help: "deadline of a router call when the caller sets none (the application's SLO normally answers first)",
  },
};

async function main(): Promise<void> {
  const config = loadServiceConfig("gateway", spec);
  const logger = createLogger({ service: "gateway" });
  const gateway = await startGateway({ ...config, logger, metrics: createMetricsRegistry("gateway") });
  logger.info({ port: gateway.port, router: config.router, registry: config.registry }, "listening");
  onShutdownSignal(logger, () => gateway.close());
}

main().catch(exitOnStartupError);
