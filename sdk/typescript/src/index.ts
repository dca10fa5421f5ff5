// @clipper/model-sdk: serve a model as a Clipper model container (clipper.model.v1.ModelService).
// The export list is explicit on purpose: what is not here is the package's own business.

export { fsum } from "./fsum.js";
export type { Inputs } from "./gen/clipper/common/v1/data_pb.js";
export { InputType } from "./gen/clipper/common/v1/data_pb.js";
export { inputTypeName, parseInputType } from "./inputs.js";
export type { Model, ModelInput, ModelOutcome, PredictFunction } from "./model.js";
export { runModel, unpackInputs } from "./model.js";
export type { Logger, RunningModelServer, ServeModelOptions } from "./model-server.js";
export { serveModel } from "./model-server.js";
export type { RunnerConfig } from "./runner-config.js";
export { loadModel, RunnerConfigError, runnerConfigFromEnv } from "./runner-config.js";
