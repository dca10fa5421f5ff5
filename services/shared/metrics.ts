import http from "node:http";
import client from "prom-client";

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

export { client as prom };
