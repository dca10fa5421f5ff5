import { type ConfigOf, commonOptions, defaults, latencyBucketsOption, loadConfig, parse, securityOptions } from "../shared/index.js";
import type { TakeOrder } from "./batching/batch-queue.js";
import { MODEL_CALLS, type ModelCalls } from "./model-clients.js";
import { defaultBatchingDefaults } from "./query-processor.js";
import type { RouterCoreOptions } from "./router.js";

/** The router's flags and environment variables (`node dist/router/main.mjs --help` lists them). */
export const routerSpec = {
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
  maxQueueLength: {
    flag: "max-queue-length",
    env: "CLIPPER_ROUTER_MAX_QUEUE_LENGTH",
    default: defaultBatchingDefaults.maxQueueLength,
    parse: parse.int(1, 10_000_000),
    help: "queries waiting per model version before new ones are refused, for models that set no max_queue_length",
  },
  maxInFlightPerReplica: {
    flag: "max-in-flight-per-replica",
    env: "CLIPPER_ROUTER_MAX_IN_FLIGHT_PER_REPLICA",
    default: defaultBatchingDefaults.maxInFlightPerReplica,
    parse: parse.int(1, 1024),
    help: "batches in flight to one replica at once, for models that set no max_in_flight_per_replica",
  },
  maxStreamCalls: {
    flag: "max-stream-calls",
    env: "CLIPPER_ROUTER_MAX_STREAM_CALLS",
    default: 10_000,
    parse: parse.int(1, 1_000_000),
    help: "queries open at once on one gateway's QueryStream; past it a query is refused with RESOURCE_EXHAUSTED",
  },
  modelCalls: {
    flag: "model-calls",
    env: "CLIPPER_ROUTER_MODEL_CALLS",
    default: "stream" as ModelCalls,
    parse: parse.oneOf(...MODEL_CALLS),
    help: "how batches reach model replicas: stream (one PredictStream per replica, unary for containers without it) or unary (one Predict call each)",
  },
  queueUnderOverload: {
    flag: "queue-under-overload",
    env: "CLIPPER_ROUTER_QUEUE_UNDER_OVERLOAD",
    default: "latest" as TakeOrder,
    parse: parse.oneOf("latest", "earliest"),
    help: "which queries a model version's queue serves once its oldest has waited half its SLO: latest (the latest deadline first) or earliest (earliest deadline first throughout)",
  },
  latencyBuckets: latencyBucketsOption,
  insecure: securityOptions.insecure(),
  tlsCert: securityOptions.tlsCert(),
  tlsKey: securityOptions.tlsKey(),
  tlsCa: securityOptions.tlsCa(),
  serviceToken: securityOptions.serviceToken(),
  cacheBytes: {
    flag: "cache-bytes",
    env: "CLIPPER_ROUTER_CACHE_BYTES",
    default: 64 * 1_048_576,
    parse: parse.int(0, 64 * 1024 * 1_048_576),
    help: "bound of the prediction cache (for applications with cache_enabled), in bytes",
  },
};

export type RouterConfig = ConfigOf<typeof routerSpec>;

/** What of the router's configuration its core takes (not its own server's address, TLS or metrics port). */
export function routerCoreSettings(
  config: RouterConfig,
): Pick<RouterCoreOptions, "limits" | "maxWaitMs" | "batching" | "cacheBytes" | "maxStreamCalls" | "modelCalls" | "latencyBuckets" | "queueUnderOverload"> {
  return {
    limits: { maxBatch: config.maxBatch, maxInputSize: config.maxInputSize },
    maxWaitMs: config.maxWaitMs,
    batching: { maxQueueLength: config.maxQueueLength, maxInFlightPerReplica: config.maxInFlightPerReplica },
    cacheBytes: config.cacheBytes,
    maxStreamCalls: config.maxStreamCalls,
    modelCalls: config.modelCalls,
    latencyBuckets: config.latencyBuckets,
    queueUnderOverload: config.queueUnderOverload,
  };
}

/**
 * The settings of a router running inside a gateway (`--router in-process`):
 * from the router's environment variables (CLIPPER_ROUTER_CACHE_BYTES, ...)
 * and defaults, since the gateway's flags are its own.
 */
export function inProcessRouterConfig(env: NodeJS.ProcessEnv = process.env): RouterConfig {
  return loadConfig("router", routerSpec, [], env);
}
