// Debian's prometheus as a child process for tests: a configuration generated
// from deploy/prometheus.yml with its targets rewritten to the test's ports,
// and a small client of its HTTP API.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
// js-yaml through @kubernetes/client-node (already a dependency): the one YAML parser the repository has.
import { loadYaml } from "@kubernetes/client-node";
import { repoRoot } from "../system.js";

export const deployPrometheusConfig = join(repoRoot, "deploy", "prometheus.yml");

/** What `prometheus --version` prints first, or undefined when there is no prometheus on PATH. */
export function prometheusVersion(): string | undefined {
  const r = spawnSync("prometheus", ["--version"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) return undefined;
  return `${r.stdout}${r.stderr}`.split("\n")[0];
}

interface ScrapeConfig {
  job_name: string;
  static_configs?: Array<{ targets: string[] }>;
  file_sd_configs?: Array<{ files: string[]; refresh_interval?: string }>;
  [key: string]: unknown;
}

interface PrometheusConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  scrape_configs: ScrapeConfig[];
}

export interface TestConfigOptions {
  /** host:port per static job of deploy/prometheus.yml; every one of its static jobs must be given. */
  targets: Record<string, string>;
  /** The file_sd file the container-manager writes (<data-dir>/run/replica-targets.json). */
  fileSdFile: string;
  /** Scrape and rule evaluation interval. */
  interval: string;
}

/**
 * deploy/prometheus.yml with its static targets replaced by `targets`, its file_sd files by
 * `fileSdFile`, its rule files made absolute, and the intervals shortened. A job of the file
 * that the test does not know, or one the test names that the file lacks, is an error: the
 * file and the system must agree.
 */
export function testConfig(options: TestConfigOptions): PrometheusConfig {
  const config = loadYaml<PrometheusConfig>(readFileSync(deployPrometheusConfig, "utf8"));
  const known = new Set(Object.keys(options.targets));
  for (const job of config.scrape_configs) {
    if (job.static_configs !== undefined) {
      const target = options.targets[job.job_name];
      if (target === undefined) throw new Error(`deploy/prometheus.yml has a job ${job.job_name} the test has no target for`);
      known.delete(job.job_name);
      job.static_configs = [{ targets: [target] }];
    }
    if (job.file_sd_configs !== undefined) {
      job.file_sd_configs = job.file_sd_configs.map((sd) => ({ ...sd, files: [options.fileSdFile], refresh_interval: options.interval }));
    }
  }
  if (known.size > 0) throw new Error(`deploy/prometheus.yml has no job ${[...known].join(", ")}`);
  const base = dirname(deployPrometheusConfig);
  return {
    ...config,
    global: { ...config.global, scrape_interval: options.interval, scrape_timeout: options.interval, evaluation_interval: options.interval },
    rule_files: (config.rule_files ?? []).map((f) => resolve(base, f)),
  };
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface ActiveTarget {
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: "up" | "down" | "unknown";
  lastError: string;
  lastScrape: string;
}

export interface RuleState {
  name: string;
  type: "alerting" | "recording";
  health: string;
  lastError?: string;
  lastEvaluation: string;
  state?: string;
}

export interface AlertState {
  labels: Record<string, string>;
  state: "pending" | "firing";
}

export interface PrometheusServer {
  readonly url: string;
  /** An instant query; throws on an error answer (a bad expression). */
  query(expr: string): Promise<PromSample[]>;
  targets(): Promise<ActiveTarget[]>;
  rules(): Promise<RuleState[]>;
  alerts(): Promise<AlertState[]>;
  /** Values of a label, on the series `match` selects. */
  labelValues(label: string, match: string): Promise<string[]>;
  /** The last lines prometheus wrote (for a failure's message). */
  logTail(): string;
  stop(): Promise<void>;
}

/** A loopback port nothing listens on (at the time of asking). */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res, rej) => {
    server.once("error", rej);
    server.listen(0, "127.0.0.1", res);
  });
  const address = server.address();
  await new Promise<void>((res) => server.close(() => res()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Starts prometheus on a free loopback port with `config`, and waits until it is ready. */
export async function startPrometheus(config: PrometheusConfig, readyTimeoutMs = 30_000): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), "clipper-prometheus-"));
  const configFile = join(dir, "prometheus.yml");
  // JSON is YAML: prometheus reads it as written.
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    "prometheus",
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--storage.tsdb.retention.time=1h",
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const lines: string[] = [];
  const remember = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line !== "") lines.push(line);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stdout?.on("data", remember);
  child.stderr?.on("data", remember);
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  const logTail = () => lines.slice(-20).join("\n");

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.errorType ?? ""} ${body.error ?? ""}`);
    return body.data;
  };

  const end = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`prometheus exited before it was ready:\n${logTail()}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) {
      await stop();
      throw new Error(`prometheus not ready in ${readyTimeoutMs} ms:\n${logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    url,
    query: async (expr) => (await api<{ resultType: string; result: PromSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    targets: async () => (await api<{ activeTargets: ActiveTarget[] }>("/api/v1/targets?state=active")).activeTargets,
    rules: async () => (await api<{ groups: Array<{ rules: RuleState[] }> }>("/api/v1/rules")).groups.flatMap((g) => g.rules),
    alerts: async () => (await api<{ alerts: AlertState[] }>("/api/v1/alerts")).alerts,
    labelValues: (label, match) => api<string[]>(`/api/v1/label/${encodeURIComponent(label)}/values?match[]=${encodeURIComponent(match)}`),
    logTail,
    stop,
  };
}
