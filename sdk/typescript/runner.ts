// Entrypoint of a node_module replica, started by the container-manager:
//   node --import tsx sdk/typescript/runner.ts   (configured by CLIPPER_MODEL_* variables)
import { createMetricsRegistry, exitOnStartupError, type MetricsServer, startMetricsServer, startTracing } from "../../services/shared/index.js";
import { serveModel } from "./model-server.js";
import { loadModel, runnerConfigFromEnv } from "./runner-config.js";

async function main(): Promise<void> {
  const config = runnerConfigFromEnv(process.env);
  const tracing = startTracing(`model-${config.name}`);
  const model = await loadModel(config.modulePath);
  // CLIPPER_METRICS_PORT (set by the container-manager): serve the runtime's own /metrics there.
  const metricsPort = Number(process.env.CLIPPER_METRICS_PORT ?? "");
  const metrics = Number.isInteger(metricsPort) && metricsPort > 0 ? createMetricsRegistry("model") : undefined;
  const server = await serveModel(model, {
    name: config.name,
    version: config.version,
    inputType: config.inputType,
    port: config.port,
    ...(metrics ? { metrics } : {}),
  });
  const metricsServer: MetricsServer | undefined = metrics ? await startMetricsServer(metrics, "127.0.0.1", metricsPort) : undefined;
  process.stdout.write(
    `${JSON.stringify({ msg: "listening", port: server.port, model: config.name, version: config.version, metricsPort: metricsServer?.port })}\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    server
      .close(2000)
      .then(() => metricsServer?.close())
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch(exitOnStartupError);
