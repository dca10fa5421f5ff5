import { homedir } from "node:os";
import { join } from "node:path";
import { type ConfigOf, defaults, parse } from "../shared/index.js";

/** The registry's flags; each also has an environment variable. */
export const registryConfigSpec = {
  host: { flag: "host", env: "CLIPPER_REGISTRY_HOST", default: "127.0.0.1", parse: parse.string, help: "address to listen on" },
  port: { flag: "port", env: "CLIPPER_REGISTRY_PORT", default: defaults.registryPort as number, parse: parse.port, help: "gRPC port (0 picks a free one)" },
  metricsPort: {
    flag: "metrics-port",
    env: "CLIPPER_REGISTRY_METRICS_PORT",
    default: defaults.registryMetricsPort as number,
    parse: parse.port,
    help: "Prometheus /metrics port (0 picks a free one)",
  },
  dataDir: {
    flag: "data-dir",
    env: "CLIPPER_DATA_DIR",
    default: join(homedir(), ".clipper", "data"),
    parse: parse.string,
    help: "data directory; the embedded store lives in <data-dir>/registry",
  },
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
