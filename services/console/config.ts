import path from "node:path";
import { fileURLToPath } from "node:url";
import { type ConfigOf, commonOptions, defaults, parse } from "../shared/index.js";
import type { MetricsTarget } from "./metrics-scraper.js";

/**
 * services/console/config.ts and its bundle dist/console/main.mjs are both two
 * folders below the repository, so the built page is found the same way from either.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `name=url,name=url`: the /metrics the console scrapes, each named as the page shows it. */
export function parseMetricsTargets(raw: string): MetricsTarget[] {
  const targets: MetricsTarget[] = [];
  for (const item of raw.split(",")) {
    const entry = item.trim();
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq).trim();
    const url = entry.slice(eq + 1).trim();
    if (eq <= 0 || !/^[a-z][a-z0-9-]{0,62}$/.test(name)) throw new Error(`expected name=http://host:port/metrics, got "${entry}"`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`${name}: "${url}" is not a URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error(`${name}: "${url}" is not an http(s) URL`);
    if (targets.some((t) => t.name === name)) throw new Error(`target "${name}" is named twice`);
    targets.push({ name, url });
  }
  if (targets.length > 32) throw new Error("at most 32 targets");
  return targets;
}

const local = (port: number) => `http://127.0.0.1:${port}/metrics`;

/** The console's flags; each also has an environment variable. */
export const consoleConfigSpec = {
  host: commonOptions.host("CLIPPER_CONSOLE"),
  port: commonOptions.port("CLIPPER_CONSOLE", defaults.consolePort, "HTTP port of the page, its API, /healthz and /metrics"),
  registry: commonOptions.registry(),
  containerManager: {
    flag: "container-manager",
    env: "CLIPPER_CONTAINER_MANAGER",
    default: `127.0.0.1:${defaults.containerManagerPort}`,
    parse: parse.address,
    help: "host:port of the container-manager (replicas' log lines)",
  },
  metricsTargets: {
    flag: "metrics-targets",
    env: "CLIPPER_CONSOLE_METRICS_TARGETS",
    default: parseMetricsTargets(
      `gateway=${local(defaults.gatewayPort)},registry=${local(defaults.registryMetricsPort)},container-manager=${local(defaults.containerManagerMetricsPort)}`,
    ),
    parse: parseMetricsTargets,
    help: "the services' /metrics to scrape, name=url,... (the router's series are on the gateway's when it runs inside it)",
  },
  token: {
    flag: "token",
    env: "CLIPPER_CONSOLE_TOKEN",
    default: "",
    parse: parse.string,
    help: "the console's own API token for reading the registry (read-only is enough; prefer the environment variable: flags show in ps)",
  },
  uiDir: {
    flag: "ui-dir",
    env: "CLIPPER_CONSOLE_UI_DIR",
    default: path.join(repoRoot, "dist", "console-ui"),
    parse: (raw: string) => path.resolve(raw),
    help: "the built page (`clipper up` builds it from console/)",
  },
  scrapeIntervalMs: {
    flag: "scrape-interval-ms",
    env: "CLIPPER_CONSOLE_SCRAPE_INTERVAL_MS",
    default: 1000,
    parse: parse.int(100, 60_000),
    help: "how often the services' /metrics are read",
  },
  rateWindowMs: {
    flag: "rate-window-ms",
    env: "CLIPPER_CONSOLE_RATE_WINDOW_MS",
    default: 5000,
    parse: parse.int(200, 600_000),
    help: "rates and percentiles are computed over this span",
  },
  historyFrames: {
    flag: "history-frames",
    env: "CLIPPER_CONSOLE_HISTORY_FRAMES",
    default: 600,
    parse: parse.int(1, 100_000),
    help: "frames (one per scrape) kept for pages that open later",
  },
  maxStreams: {
    flag: "max-streams",
    env: "CLIPPER_CONSOLE_MAX_STREAMS",
    default: 64,
    parse: parse.int(1, 10_000),
    help: "most pages served live at once",
  },
};

export type ConsoleConfig = ConfigOf<typeof consoleConfigSpec>;
