import type { Output } from "../../gen/clipper/common/v1/data_pb.js";
import type { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { type Logger, type RunningGrpcServer, inputTypeName, registration, startGrpcServer, validateInputs } from "../../services/shared/index.js";
import { type Model, runModel } from "./model.js";

export interface ServeModelOptions {
  name: string;
  version: string;
  inputType: InputType;
  /** Defaults to 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** The largest batch the model accepts; 0 (the default) means no limit. */
  maxBatchSize?: number;
  logger?: Logger;
}

/**
 * Serves a model as clipper.model.v1.ModelService, with grpc.health.v1.
 * Model failures become per-input errors; only a malformed request fails the call.
 */
export async function serveModel(model: Model, options: ServeModelOptions): Promise<RunningGrpcServer> {
  const maxBatchSize = options.maxBatchSize ?? 0;
  const limits = { maxBatch: maxBatchSize > 0 ? maxBatchSize : Number.MAX_SAFE_INTEGER, maxInputSize: Number.MAX_SAFE_INTEGER };
  return startGrpcServer({
    ...(options.host !== undefined ? { host: options.host } : {}),
    port: options.port,
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    services: [
      registration(ModelService, {
        async predict(req) {
          validateInputs(req.inputs, options.inputType, limits);
          // validateInputs has checked that inputs is present.
          const outcomes = await runModel(model, req.inputs!);
          const outputs = outcomes.map(
            (o): Pick<Output, "result"> => ("value" in o ? { result: { case: "value", value: o.value } } : { result: { case: "error", value: o.error } }),
          );
          return { outputs };
        },
        getMetadata() {
          return {
            modelName: options.name,
            modelVersion: options.version,
            inputType: options.inputType,
            runtime: `node ${process.versions.node}`,
            maxBatchSize,
          };
        },
        checkReadiness() {
          return { ready: true };
        },
      }),
    ],
  }).then((server) => {
    options.logger?.info({ model: options.name, version: options.version, inputType: inputTypeName(options.inputType), port: server.port }, "model serving");
    return server;
  });
}
