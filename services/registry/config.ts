import { type ConfigOf, commonOptions, defaults, parse } from "../shared/index.js";

/** The registry's flags; each also has an environment variable. */
export const registryConfigSpec = {
  host: commonOptions.host("CLIPPER_REGISTRY"),
  port: commonOptions.port("CLIPPER_REGISTRY", defaults.registryPort, "gRPC port"),
  metricsPort: commonOptions.metricsPort("CLIPPER_REGISTRY", defaults.registryMetricsPort),
  dataDir: commonOptions.dataDir("data directory; the embedded store lives in <data-dir>/registry"),
  store: { flag: "store", env: "CLIPPER_REGISTRY_STORE", default: "embedded" as "embedded" | "redis", parse: parse.oneOf("embedded", "redis"), help: "where configuration is kept" },
  redisUrl: { flag: "redis-url", env: "CLIPPER_REDIS_URL", default: "redis://127.0.0.1:6379", parse: parseRedisUrl, help: "Redis to use with --store redis" },
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
