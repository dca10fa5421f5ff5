// The TypeScript model SDK: serve a model as a Clipper model container.
export { serveModel } from "./model-server.js";
export type { ServeModelOptions } from "./model-server.js";
export { runModel, unpackInputs } from "./model.js";
export type { Model, ModelInput, ModelOutcome, PredictFunction } from "./model.js";
export { loadModel, runnerConfigFromEnv } from "./runner-config.js";
export type { RunnerConfig } from "./runner-config.js";
export { fsum } from "./fsum.js";
