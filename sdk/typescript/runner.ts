// Entrypoint of a node_module replica, started by the container-manager:
//   node --import tsx sdk/typescript/runner.ts   (configured by CLIPPER_MODEL_* variables)
import { exitOnStartupError } from "../../services/shared/index.js";
import { serveModel } from "./model-server.js";
import { loadModel, runnerConfigFromEnv } from "./runner-config.js";

async function main(): Promise<void> {
  const config = runnerConfigFromEnv(process.env);
  const model = await loadModel(config.modulePath);
  const server = await serveModel(model, {
    name: config.name,
    version: config.version,
    inputType: config.inputType,
    port: config.port,
  });
  process.stdout.write(`${JSON.stringify({ msg: "listening", port: server.port, model: config.name, version: config.version })}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    server.close(2000).then(() => process.exit(0), () => process.exit(1));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch(exitOnStartupError);
