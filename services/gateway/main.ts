import cluster from "node:cluster";
import { type Client, createClient, createRouterTransport } from "@connectrpc/connect";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { createRouterCore, inProcessRouterConfig, type RouterCore, routerCoreSettings } from "../router/index.js";
import {
  ConfigError,
  type ConfigWatcher,
  clientSecurity,
  commonOptions,
  createGrpcTransport,
  createLogger,
  createMetricsRegistry,
  defaults,
  exitOnStartupError,
  type Logger,
  latencyBucketsOption,
  loadServiceConfig,
  loadTlsMaterial,
  onShutdownSignal,
  parse,
  type prom,
  securityOptions,
  startTracing,
  watchConfig,
} from "../shared/index.js";
import { AppKeys } from "./app-keys.js";
import { DEFAULT_LISTEN_BACKLOG, startGateway } from "./gateway.js";
import { connectRouter, ROUTER_CALLS, type RouterCalls, type RouterLink } from "./router-link.js";
import { clusterMetricsText, superviseWorkers } from "./workers.js";

/** The `--router` value that runs the router inside the gateway's process. */
const IN_PROCESS = "in-process";

const spec = {
  host: commonOptions.host("CLIPPER_GATEWAY"),
  port: commonOptions.port("CLIPPER_GATEWAY", defaults.gatewayPort, "port for REST, Connect, gRPC-Web (HTTP/1.1) and gRPC (h2c); /metrics is served here too"),
  router: {
    flag: "router",
    env: "CLIPPER_ROUTER",
    default: `127.0.0.1:${defaults.routerPort}`,
    parse: (raw: string): string => (raw === IN_PROCESS ? raw : parse.address(raw)),
    help: `host:port of the router, or ${IN_PROCESS}: run the router inside this process (its settings from CLIPPER_ROUTER_* variables)`,
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
  maxInFlight: {
    flag: "max-in-flight",
    env: "CLIPPER_GATEWAY_MAX_IN_FLIGHT",
    default: 4096,
    parse: parse.int(1, 1_000_000),
    help: "queries answered at once (all protocols); more are refused with 429 / RESOURCE_EXHAUSTED",
  },
  listenBacklog: {
    flag: "listen-backlog",
    env: "CLIPPER_GATEWAY_LISTEN_BACKLOG",
    default: DEFAULT_LISTEN_BACKLOG,
    parse: parse.int(1, 65_535),
    help: "connections the kernel holds for the gateway before it accepts them (capped by net.core.somaxconn); past it, new connections wait a SYN retry (1 s, 3 s, ...)",
  },
  workers: {
    flag: "workers",
    env: "CLIPPER_GATEWAY_WORKERS",
    default: 1,
    parse: parse.int(1, 64),
    help: "gateway processes sharing the port (node:cluster); /metrics answers their sum. --max-in-flight applies to each",
  },
  routerCalls: {
    flag: "router-calls",
    env: "CLIPPER_GATEWAY_ROUTER_CALLS",
    default: "stream" as RouterCalls,
    parse: parse.oneOf(...ROUTER_CALLS),
    help: "how queries reach the router: stream (many per message on one QueryStream) or unary (one Query call each)",
  },
  appKeysFile: {
    flag: "app-keys-file",
    env: "CLIPPER_GATEWAY_APP_KEYS_FILE",
    default: "",
    parse: parse.string,
    help: "file of hashed per-application prediction keys (`clipper key create`); applications it names need a key",
  },
  tlsCert: securityOptions.tlsCert(),
  tlsKey: securityOptions.tlsKey(),
  tlsCa: securityOptions.tlsCa(),
  serviceToken: securityOptions.serviceToken(),
  drainMs: {
    flag: "drain-ms",
    env: "CLIPPER_GATEWAY_DRAIN_MS",
    default: 5000,
    parse: parse.int(0, 600_000),
    help: "on shutdown, how long requests already being answered get to finish",
  },
  latencyBuckets: latencyBucketsOption,
  queryTimeoutMs: {
    flag: "query-timeout-ms",
    env: "CLIPPER_GATEWAY_QUERY_TIMEOUT_MS",
    default: 30_000,
    parse: parse.int(1, 3_600_000),
    help: "deadline of a router call when the caller sets none (the application's SLO normally answers first)",
  },
};

// The gateway's composition root: the process's one registry channel and config
// watch, the router link (a router service, or the router's core in this
// process), then the gateway over them.
async function main(): Promise<void> {
  const config = loadServiceConfig("gateway", spec);
  if (config.workers > 1 && cluster.isPrimary) {
    await superviseWorkers({ workers: config.workers, logger: createLogger({ service: "gateway" }) });
    return;
  }
  const logger = createLogger({ service: "gateway", ...(cluster.isWorker ? { worker: cluster.worker?.id } : {}) });
  const tracing = startTracing("gateway");
  const { appKeysFile, tlsCert, tlsKey, tlsCa, serviceToken, workers: _workers, router: routerAddress, routerCalls, ...options } = config;
  const metrics = createMetricsRegistry("gateway");
  // The same certificate serves the public edge and identifies the gateway to the router and registry (mutual TLS).
  const tls = loadTlsMaterial({ cert: tlsCert, key: tlsKey, ca: tlsCa });
  const appKeys = appKeysFile === "" ? undefined : loadAppKeys(appKeysFile);
  const registryTransport = createGrpcTransport({ address: config.registry, ...clientSecurity({ tls, token: serviceToken }) });
  const registry = createClient(ManagementService, registryTransport);
  const watcher = watchConfig({ registry: config.registry, client: registry, logger });
  const router =
    routerAddress === IN_PROCESS
      ? inProcessRouter({ config: watcher, registry, logger, metrics, latencyBuckets: config.latencyBuckets })
      : connectRouter({ address: routerAddress, calls: routerCalls, security: clientSecurity({ tls }), logger });
  const gateway = await startGateway({
    ...options,
    router,
    config: watcher,
    logger,
    metrics,
    ...(cluster.isWorker ? { metricsText: clusterMetricsText(metrics), ...(cluster.worker ? { workerId: cluster.worker.id } : {}) } : {}),
    ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    ...(appKeys ? { appKeys } : {}),
  });
  logger.info(
    {
      port: gateway.port,
      router: routerAddress,
      registry: config.registry,
      tls: tls !== undefined,
      appKeys: appKeys !== undefined,
      tracing: tracing !== undefined,
    },
    "listening",
  );
  onShutdownSignal(logger, async () => {
    await gateway.close();
    router.close();
    watcher.close();
    registryTransport.close();
    await tracing?.shutdown();
  });
}

interface InProcessRouterOptions {
  config: ConfigWatcher;
  registry: Client<typeof ManagementService>;
  logger: Logger;
  metrics: prom.Registry;
  latencyBuckets: readonly number[];
}

/**
 * The router inside the gateway's process (`--router in-process`): a query
 * is a call into its core, with no message to encode, no socket and no second
 * process on the way, which on one machine is most of what the router cost per
 * query (bench/RESULTS.md). It shares the gateway's config watch and registry
 * channel; its metrics join the gateway's /metrics; with --workers each worker
 * runs its own router (its own queues and cache) in front of the same replicas.
 * Its settings come from the CLIPPER_ROUTER_* variables.
 */
function inProcessRouter(options: InProcessRouterOptions): RouterLink {
  const core: RouterCore = createRouterCore({
    ...routerCoreSettings(inProcessRouterConfig()),
    config: options.config,
    registry: options.registry,
    logger: options.logger.child({ component: "router" }),
    metrics: options.metrics,
    latencyBuckets: options.latencyBuckets,
  });
  return {
    query: (query, timeoutMs, signal) => core.query(query, timeoutMs, signal),
    overloadReason: (application) => core.overloadReason(application),
    // Feedback through the same QueryService handlers a remote gateway reaches.
    feedback: createClient(
      QueryService,
      createRouterTransport(({ service }) => service(QueryService, core.impl)),
    ),
    readiness: async () =>
      core.configured()
        ? { ready: true, cause: "" }
        : { ready: false, cause: "the in-process router has not received the configuration from the registry yet" },
    close: () => core.close(),
  };
}

function loadAppKeys(file: string): AppKeys {
  try {
    return AppKeys.load(file);
  } catch (err) {
    throw new ConfigError(`gateway: --app-keys-file: ${(err as Error).message}`);
  }
}

main().catch(exitOnStartupError);
