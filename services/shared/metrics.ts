import http from "node:http";
import client from "prom-client";
import type { Option } from "./config.js";

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** A registry with Node process metrics, prefixed `clipper_`. */
export function createMetricsRegistry(service: string): client.Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels({ service });
  client.collectDefaultMetrics({ register: registry, prefix: "clipper_" });
  return registry;
}

/** Serves `GET /metrics` (Prometheus text) and `GET /healthz` on its own port. */
export async function startMetricsServer(registry: client.Registry, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer(async (req, res) => {
    if (req.method === "GET" && req.url === "/metrics") {
      res.writeHead(200, { "content-type": registry.contentType });
      res.end(await registry.metrics());
    } else if (req.method === "GET" && req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok\n");
    } else {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "not found", cause: `no route for ${req.method} ${req.url}` }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Latency buckets (seconds) from 0.5 ms to 10 s: Clipper's SLOs are milliseconds to a second. */
/** Histogram buckets for batch sizes (inputs per batch), shared by the router and model runtimes. */
export const batchSizeBuckets: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

export const defaultLatencyBuckets: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Histogram buckets from "0.001,0.01,0.1": positive, finite, strictly increasing, at most 64. */
export function parseBuckets(raw: string): number[] {
  const values = raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(Number);
  if (values.length === 0) throw new Error("expected a comma-separated list of bucket upper bounds in seconds");
  if (values.length > 64) throw new Error(`at most 64 buckets, got ${values.length}`);
  values.forEach((v, i) => {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`bucket ${i + 1} is not a positive number`);
    if (i > 0 && v <= (values[i - 1] as number)) throw new Error(`buckets must increase: ${v} after ${values[i - 1]}`);
  });
  return values;
}

/** `--latency-buckets` / CLIPPER_LATENCY_BUCKETS: the buckets of every latency histogram of a service. */
export const latencyBucketsOption: Option<readonly number[]> = {
  flag: "latency-buckets",
  env: "CLIPPER_LATENCY_BUCKETS",
  default: defaultLatencyBuckets,
  parse: parseBuckets,
  help: "upper bounds (seconds, comma-separated) of the latency histograms' buckets",
};

export { client as prom };
