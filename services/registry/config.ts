import { type ConfigOf, commonOptions, defaults, parse } from "../shared/index.js";
import { DEFAULT_POLICY_STATE_BOUNDS } from "./store.js";
import { DEFAULT_REGISTRY_LIMITS, LIMITS } from "./validation.js";

/** The registry's flags; each also has an environment variable. */
export const registryConfigSpec = {
  host: commonOptions.host("CLIPPER_REGISTRY"),
  port: commonOptions.port("CLIPPER_REGISTRY", defaults.registryPort, "gRPC port"),
  metricsPort: commonOptions.metricsPort("CLIPPER_REGISTRY", defaults.registryMetricsPort),
  dataDir: commonOptions.dataDir("data directory; the embedded store lives in <data-dir>/registry"),
  store: {
    flag: "store",
    env: "CLIPPER_REGISTRY_STORE",
    default: "embedded" as "embedded" | "redis",
    parse: parse.oneOf("embedded", "redis"),
    help: "where configuration is kept",
  },
  redisUrl: { flag: "redis-url", env: "CLIPPER_REDIS_URL", default: "redis://127.0.0.1:6379", parse: parseRedisUrl, help: "Redis to use with --store redis" },
  maxApplications: {
    flag: "max-applications",
    env: "CLIPPER_REGISTRY_MAX_APPLICATIONS",
    default: DEFAULT_REGISTRY_LIMITS.maxApplications,
    parse: parse.int(1, 1_000_000),
    help: "most applications the registry holds",
  },
  maxModelVersions: {
    flag: "max-model-versions",
    env: "CLIPPER_REGISTRY_MAX_MODEL_VERSIONS",
    default: DEFAULT_REGISTRY_LIMITS.maxModelVersions,
    parse: parse.int(1, 1_000_000),
    help: "most model versions (of all models together) the registry holds",
  },
  maxDesiredReplicas: {
    flag: "max-desired-replicas",
    env: "CLIPPER_REGISTRY_MAX_DESIRED_REPLICAS",
    default: DEFAULT_REGISTRY_LIMITS.maxDesiredReplicas,
    parse: parse.int(1, 100_000),
    help: "most replicas one model version may ask for",
  },
  maxPolicyUsers: {
    flag: "max-policy-users",
    env: "CLIPPER_REGISTRY_MAX_POLICY_USERS",
    default: DEFAULT_POLICY_STATE_BOUNDS.maxUsers,
    parse: parse.int(1, 100_000_000),
    help: "most users (uids) with a learned policy state per application; the least recently used go first",
  },
  maxPolicyStateBytes: {
    flag: "max-policy-state-bytes",
    env: "CLIPPER_REGISTRY_MAX_POLICY_STATE_BYTES",
    default: DEFAULT_POLICY_STATE_BOUNDS.maxUserBytes,
    // At least one state of the largest size (LIMITS.maxPolicyStateBytes) must fit.
    parse: parse.int(LIMITS.maxPolicyStateBytes, Number.MAX_SAFE_INTEGER),
    help: "most bytes of users' learned policy states per application; the least recently used go first",
  },
  redisPrefix: { flag: "redis-prefix", env: "CLIPPER_REDIS_PREFIX", default: "clipper:", parse: parse.string, help: "prefix of the registry's Redis keys" },
};

export type RegistryConfig = ConfigOf<typeof registryConfigSpec>;

function parseRedisUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error("expected redis://host:port[/db]");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") throw new Error("expected redis://host:port[/db]");
  return raw;
}
