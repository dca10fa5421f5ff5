#!/usr/bin/env node
// Entrypoint of a node_module replica, configured by CLIPPER_MODEL_* variables. The container-manager
// starts `node --import tsx sdk/typescript/src/runner.ts` (so TypeScript model modules load); from the
// installed package it is `clipper-model-runner` or `node node_modules/@clipper/model-sdk/dist/runner.js`.
import { createModelRegistry, type MetricsEndpoint, serveMetrics } from "./metrics.js";
import { DEFAULT_DRAIN_TIMEOUT_MS, serveModel } from "./model-server.js";
import { loadModel, runnerConfigFromEnv } from "./runner-config.js";
import { startTracing } from "./tracing.js";

async function main(): Promise<void> {
  const config = runnerConfigFromEnv(process.env);
  const tracing = await startTracing(`model-${config.name}`);
  const model = await loadModel(config.modulePath);
  // CLIPPER_METRICS_PORT (set by the container-manager): serve the runtime's own /metrics there.
  const metricsPort = Number(process.env.CLIPPER_METRICS_PORT ?? "");
  const metrics = Number.isInteger(metricsPort) && metricsPort > 0 ? createModelRegistry() : undefined;
  const server = await serveModel(model, {
    name: config.name,
    version: config.version,
    inputType: config.inputType,
    port: config.port,
    ...(metrics ? { metrics } : {}),
  });
  const metricsEndpoint: MetricsEndpoint | undefined = metrics ? await serveMetrics(metrics, "127.0.0.1", metricsPort) : undefined;
  process.stdout.write(
    `${JSON.stringify({ msg: "listening", port: server.port, model: config.name, version: config.version, metricsPort: metricsEndpoint?.port })}\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    // Batches in flight finish (bounded), then the process exits 0; a second signal exits at once.
    server
      .close(DEFAULT_DRAIN_TIMEOUT_MS)
      .then(() => metricsEndpoint?.close())
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

// A start-up failure (a missing variable, a module that does not load) is one clear line and exit code 2.
main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
