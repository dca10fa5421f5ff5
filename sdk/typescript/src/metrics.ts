import http from "node:http";
import prom from "prom-client";

/** Histogram buckets for inputs per batch, the router's and the Python runtime's too. */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/** Latency buckets (seconds) from 0.5 ms to 10 s, the services' default. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = "model" | "version";

/** The model runtime's series, named like the Python runtime's (docs/metrics.md). */
export class ModelMetrics {
  readonly requests: prom.Counter<Labels | "outcome">;
  readonly inputs: prom.Counter<Labels | "outcome">;
  readonly batchSize: prom.Histogram<Labels>;
  readonly predictDuration: prom.Histogram<Labels>;

  constructor(registry: prom.Registry) {
    const registers = [registry];
    const labelNames = ["model", "version"] as const;
    this.requests = new prom.Counter({
      name: "clipper_model_requests_total",
      help: "Batches (Predict calls and PredictStream messages), by outcome (ok, model_error, invalid_input).",
      labelNames: [...labelNames, "outcome"],
      registers,
    });
    this.inputs = new prom.Counter({
      name: "clipper_model_inputs_total",
      help: "Inputs predicted, by outcome of their output (ok, error).",
      labelNames: [...labelNames, "outcome"],
      registers,
    });
    this.batchSize = new prom.Histogram({ name: "clipper_model_batch_size", help: "Inputs per batch.", labelNames, buckets: BATCH_SIZE_BUCKETS, registers });
    this.predictDuration = new prom.Histogram({
      name: "clipper_model_predict_duration_seconds",
      help: "Time to answer one batch.",
      labelNames,
      buckets: LATENCY_BUCKETS,
      registers,
    });
  }
}

/** A registry with Node's process metrics (prefixed `clipper_`) and the label service="model". */
export function createModelRegistry(): prom.Registry {
  const registry = new prom.Registry();
  registry.setDefaultLabels({ service: "model" });
  prom.collectDefaultMetrics({ register: registry, prefix: "clipper_" });
  return registry;
}

export interface MetricsEndpoint {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves the registry as Prometheus text on `GET /metrics` (and `GET /healthz`), on a port of its own. */
export async function serveMetrics(registry: prom.Registry, host: string, port: number): Promise<MetricsEndpoint> {
  const server = http.createServer((req, res) => {
    if (req.method !== "GET" || (req.url !== "/metrics" && req.url !== "/healthz")) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`no route for ${req.method} ${req.url}\n`);
    } else if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(err)}\n`),
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
