// The TypeScript model SDK: serve a model as a Clipper model container.

export { fsum } from "./fsum.js";
export type { Model, ModelInput, ModelOutcome, PredictFunction } from "./model.js";
export { runModel, unpackInputs } from "./model.js";
export type { ServeModelOptions } from "./model-server.js";
export { serveModel } from "./model-server.js";
export type { RunnerConfig } from "./runner-config.js";
export { loadModel, runnerConfigFromEnv } from "./runner-config.js";
