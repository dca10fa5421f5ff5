import cluster, { type Worker } from "node:cluster";
import { Backoff, type Logger, prom } from "../shared/index.js";

/**
 * Several gateway processes on one port (`--workers N`), as nginx or Ray
 * Serve's per-node proxies do: one Node process parses HTTP, JSON and
 * protobuf on one core, and the gateway is the busiest process on the query
 * path (bench/RESULTS.md). The primary only supervises: node:cluster hands
 * the listening socket's connections to the workers, a worker that dies is
 * replaced (with backoff), SIGTERM drains every worker, and /metrics, asked
 * of any worker, answers the sum over all of them.
 */

/** A worker asks the primary for the aggregated metrics; the primary answers with the text. */
interface MetricsRequest {
  type: "clipper:gateway-metrics";
  id: number;
}
interface MetricsResponse {
  type: "clipper:gateway-metrics";
  id: number;
  text?: string;
  error?: string;
}

export interface SupervisorOptions {
  workers: number;
  logger: Logger;
  /** Replacement of dead workers: the delay grows while they keep dying early. */
  restartBackoff?: Backoff;
}

/** Runs the primary: forks the workers and keeps them running until SIGTERM/SIGINT. Resolves when all have exited after a signal. */
export function superviseWorkers(options: SupervisorOptions): Promise<void> {
  const { logger } = options;
  const backoff = options.restartBackoff ?? new Backoff();
  const aggregator = new prom.AggregatorRegistry();
  let stopping = false;
  let listening = 0;
  const fork = () => {
    const worker = cluster.fork();
    const startedAt = Date.now();
    worker.on("message", (message: MetricsRequest) => {
      if (message?.type !== "clipper:gateway-metrics") return;
      aggregator.clusterMetrics().then(
        (text) => send(worker, { type: message.type, id: message.id, text }),
        (err: unknown) => send(worker, { type: message.type, id: message.id, error: (err as Error).message }),
      );
    });
    worker.once("listening", (address) => {
      if (++listening === options.workers) logger.info({ port: address.port, workers: options.workers }, "listening");
    });
    worker.once("exit", (code, signal) => {
      if (stopping) return;
      // A worker that ran for a while before dying restarts at once; one dying at start backs off.
      if (Date.now() - startedAt > 10_000) backoff.reset();
      const delayMs = backoff.next();
      logger.error({ worker: worker.process.pid, code, signal, restartInMs: delayMs }, "gateway worker exited; starting another");
      setTimeout(() => {
        if (!stopping) fork();
      }, delayMs).unref();
    });
  };
  for (let i = 0; i < options.workers; i++) fork();
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "stopping the gateway workers");
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      let left = workers.length;
      if (left === 0) resolve();
      for (const w of workers) {
        w.once("exit", () => {
          if (--left === 0) resolve();
        });
        w.process.kill("SIGTERM");
      }
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

function send(worker: Worker, message: MetricsResponse): void {
  if (worker.isConnected()) worker.send(message);
}

/**
 * In a worker: this worker's registry is what the primary aggregates, and
 * the returned function fetches the sum over all workers from the primary.
 */
export function clusterMetricsText(registry: prom.Registry, timeoutMs = 5000): () => Promise<string> {
  prom.AggregatorRegistry.setRegistries([registry]);
  // Constructing one is what makes prom-client answer the primary's requests in this worker.
  new prom.AggregatorRegistry();
  let nextId = 1;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  process.on("message", (message: MetricsResponse) => {
    if (message?.type !== "clipper:gateway-metrics") return;
    const w = waiting.get(message.id);
    if (w === undefined) return;
    waiting.delete(message.id);
    if (message.text !== undefined) w.resolve(message.text);
    else w.reject(new Error(`aggregating the workers' metrics failed: ${message.error ?? "no answer"}`));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the gateway's primary process did not send the workers' metrics within ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      process.send?.({ type: "clipper:gateway-metrics", id } satisfies MetricsRequest);
    });
}
