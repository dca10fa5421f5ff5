import { homedir } from "node:os";
import { join, resolve } from "node:path";

/**
 * Typed service configuration from flags and environment variables, with
 * defaults that work on one machine. Flags win over the environment.
 */
export interface Option<T> {
  /** `--flag value` or `--flag=value`. */
  flag: string;
  env: string;
  default: T;
  parse: (raw: string) => T;
  help: string;
}

export type ConfigOf<S extends Record<string, Option<unknown>>> = { [K in keyof S]: S[K] extends Option<infer T> ? T : never };

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function loadConfig<S extends Record<string, Option<unknown>>>(
  service: string,
  spec: S,
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): ConfigOf<S> {
  const flags = parseFlags(argv, spec, service);
  const out: Record<string, unknown> = {};
  for (const [key, opt] of Object.entries(spec)) {
    const fromFlag = flags.get(opt.flag);
    const raw = fromFlag ?? env[opt.env];
    if (raw === undefined || raw === "") {
      out[key] = opt.default;
      continue;
    }
    try {
      out[key] = opt.parse(raw);
    } catch (err) {
      const where = fromFlag !== undefined ? `--${opt.flag}` : `$${opt.env}`;
      throw new ConfigError(`${service}: invalid ${where}=${JSON.stringify(raw)}: ${(err as Error).message}`);
    }
  }
  return out as ConfigOf<S>;
}

export function usage(service: string, spec: Record<string, Option<unknown>>): string {
  const lines = Object.values(spec).map((o) => `  --${o.flag.padEnd(22)} ${o.help} (env ${o.env}, default ${JSON.stringify(o.default)})`);
  return `Usage: ${service} [options]\n\n${lines.join("\n")}\n`;
}

function parseFlags(argv: readonly string[], spec: Record<string, Option<unknown>>, service: string): Map<string, string> {
  const known = new Set(Object.values(spec).map((o) => o.flag));
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) throw new ConfigError(`${service}: unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (!known.has(name)) throw new ConfigError(`${service}: unknown flag --${name}\n\n${usage(service, spec)}`);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new ConfigError(`${service}: flag --${name} needs a value`);
      i++;
    }
    flags.set(name, value);
  }
  return flags;
}

export const parse = {
  string: (raw: string) => raw,
  int:
    (min: number, max: number) =>
    (raw: string): number => {
      if (!/^-?\d+$/.test(raw)) throw new Error("not an integer");
      const n = Number(raw);
      if (n < min || n > max) throw new Error(`must be between ${min} and ${max}`);
      return n;
    },
  port: (raw: string): number => parse.int(0, 65535)(raw),
  bool: (raw: string): boolean => {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new Error("expected true or false");
  },
  /** host:port, e.g. 127.0.0.1:1338. */
  address: (raw: string): string => {
    const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw);
    if (!m || Number(m[2]) > 65535) throw new Error("expected host:port");
    return raw;
  },
  oneOf:
    <T extends string>(...values: T[]) =>
    (raw: string): T => {
      if (!(values as string[]).includes(raw)) throw new Error(`expected one of ${values.join(", ")}`);
      return raw as T;
    },
};

/** Ports and addresses every service agrees on by default (README "Ports"). */
export const defaults = {
  gatewayPort: 1337,
  registryPort: 1338,
  routerPort: 1339,
  containerManagerPort: 1340,
  registryMetricsPort: 9338,
  routerMetricsPort: 9339,
  containerManagerMetricsPort: 9340,
  /** The console's page, API and /metrics (one HTTP port). */
  consolePort: 1341,
} as const;

/** Options every service shares; `envPrefix` is e.g. "CLIPPER_ROUTER". */
export const commonOptions = {
  host: (envPrefix: string): Option<string> => ({
    flag: "host",
    env: `${envPrefix}_HOST`,
    default: "127.0.0.1",
    parse: parse.string,
    help: "address to listen on",
  }),
  port: (envPrefix: string, defaultPort: number, help: string): Option<number> => ({
    flag: "port",
    env: `${envPrefix}_PORT`,
    default: defaultPort,
    parse: parse.port,
    help: `${help} (0 picks a free one)`,
  }),
  metricsPort: (envPrefix: string, defaultPort: number): Option<number> => ({
    flag: "metrics-port",
    env: `${envPrefix}_METRICS_PORT`,
    default: defaultPort,
    parse: parse.port,
    help: "Prometheus /metrics port (0 picks a free one)",
  }),
  registry: (): Option<string> => ({
    flag: "registry",
    env: "CLIPPER_REGISTRY",
    default: `127.0.0.1:${defaults.registryPort}`,
    parse: parse.address,
    help: "host:port of the registry",
  }),
  dataDir: (help: string): Option<string> => ({
    flag: "data-dir",
    env: "CLIPPER_DATA_DIR",
    default: join(homedir(), ".clipper", "data"),
    parse: (raw: string) => resolve(raw),
    help,
  }),
};

/** loadConfig for a service's main.ts: `--help` prints the usage and exits 0. */
export function loadServiceConfig<S extends Record<string, Option<unknown>>>(service: string, spec: S): ConfigOf<S> {
  if (process.argv.includes("--help")) {
    process.stdout.write(usage(service, spec));
    process.exit(0);
  }
  return loadConfig(service, spec);
}
