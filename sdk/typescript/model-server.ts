import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Inputs, InputType, Output } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService, type PredictStreamRequest, type PredictStreamResponseSchema } from "../../gen/clipper/model/v1/model_service_pb.js";
import {
  batchSizeBuckets,
  Code,
  ConnectError,
  contextOfTraceFields,
  defaultLatencyBuckets,
  inputCount,
  inputTypeName,
  type Logger,
  prom,
  type RunningGrpcServer,
  registration,
  SpanKind,
  startGrpcServer,
  TraceAttributes,
  TurnBatches,
  trace,
  validateInputs,
  withSpan,
} from "../../services/shared/index.js";
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
  /** Where to count requests, batch sizes and predict time (the same series as the Python runtime's). */
  metrics?: prom.Registry;
}

/**
 * Serves a model as clipper.model.v1.ModelService, with grpc.health.v1.
 * Model failures become per-input errors; only a malformed request fails the call.
 */
export async function serveModel(model: Model, options: ServeModelOptions): Promise<RunningGrpcServer> {
  const maxBatchSize = options.maxBatchSize ?? 0;
  const limits = { maxBatch: maxBatchSize > 0 ? maxBatchSize : Number.MAX_SAFE_INTEGER, maxInputSize: Number.MAX_SAFE_INTEGER };
  const metrics = options.metrics === undefined ? undefined : new ModelMetrics(options.metrics);
  const labels = { model: options.name, version: options.version };
  /** One batch: validated, run, counted. Model failures are per-input errors; bad inputs throw INVALID_ARGUMENT. */
  async function predictBatch(inputs: Inputs | undefined): Promise<Array<Pick<Output, "result">>> {
    const startedAt = performance.now();
    if (inputs === undefined) {
      metrics?.requests.inc({ ...labels, outcome: "invalid_input" });
      throw new ConnectError("inputs is missing", Code.InvalidArgument);
    }
    try {
      validateInputs(inputs, options.inputType, limits);
    } catch (err) {
      metrics?.requests.inc({ ...labels, outcome: "invalid_input" });
      throw err;
    }
    const size = inputCount(inputs);
    trace
      .getActiveSpan()
      ?.setAttributes({ [TraceAttributes.model]: options.name, [TraceAttributes.version]: options.version, [TraceAttributes.batchSize]: size });
    const outcomes = await runModel(model, inputs);
    const outputs = outcomes.map(
      (o): Pick<Output, "result"> => ("value" in o ? { result: { case: "value", value: o.value } } : { result: { case: "error", value: o.error } }),
    );
    if (metrics !== undefined) {
      const errors = outcomes.filter((o) => !("value" in o)).length;
      metrics.requests.inc({ ...labels, outcome: errors === size && size > 0 ? "model_error" : "ok" });
      metrics.inputs.inc({ ...labels, outcome: "ok" }, size - errors);
      metrics.inputs.inc({ ...labels, outcome: "error" }, errors);
      metrics.batchSize.observe(labels, size);
      metrics.predictDuration.observe(labels, (performance.now() - startedAt) / 1000);
    }
    return outputs;
  }

  return startGrpcServer({
    ...(options.host !== undefined ? { host: options.host } : {}),
    port: options.port,
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    services: [
      registration(ModelService, {
        async predict(req) {
          // The span is the shared gRPC server's, continuing the router's batch span.
          return { outputs: await predictBatch(req.inputs) };
        },
        predictStream(requests, ctx) {
          return answerStream(requests, ctx.signal, (req) => {
            const parent = contextOfTraceFields(req);
            return withSpan(PREDICT_SPAN, { kind: SpanKind.SERVER, ...(parent ? { parent } : {}) }, () => predictBatch(req.inputs));
          });
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

/** A streamed batch's span: the same name as a unary Predict call's, so traces read the same either way. */
const PREDICT_SPAN = `${ModelService.typeName}/${ModelService.method.predict.name}`;

/** Batches open at once on one PredictStream; the router keeps a few per replica, so more is a misbehaving caller. */
const MAX_OPEN_BATCHES = 1024;

/**
 * The answers of one PredictStream: each batch runs as it arrives (several may
 * be open, as with unary calls) and is answered by its batch_id when done. A
 * batch that fails as a whole is answered with its status code, and the stream
 * goes on. Ends when the caller has closed its side and every batch is answered.
 */
async function* answerStream(
  requests: AsyncIterable<PredictStreamRequest>,
  signal: AbortSignal,
  predict: (req: PredictStreamRequest) => Promise<Array<Pick<Output, "result">>>,
): AsyncGenerator<MessageInitShape<typeof PredictStreamResponseSchema>> {
  const outgoing = new TurnBatches<MessageInitShape<typeof PredictStreamResponseSchema>>();
  let open = 0;
  let inputEnded = false;
  let inputError: unknown;
  const endIfDone = () => {
    if (inputEnded && open === 0) outgoing.close();
  };
  const settle = (answer: MessageInitShape<typeof PredictStreamResponseSchema>) => {
    open--;
    outgoing.push(answer);
    endIfDone();
  };
  signal.addEventListener("abort", () => outgoing.close(), { once: true });
  void (async () => {
    try {
      for await (const req of requests) {
        const batchId = req.batchId;
        open++;
        if (open > MAX_OPEN_BATCHES) {
          settle({ batchId, errorCode: Code.ResourceExhausted, errorMessage: `${MAX_OPEN_BATCHES} batches are open on this stream, its limit` });
          continue;
        }
        predict(req).then(
          (outputs) => settle({ batchId, outputs }),
          (err: unknown) => {
            const e = ConnectError.from(err);
            settle({ batchId, errorCode: e.code, errorMessage: e.rawMessage });
          },
        );
      }
    } catch (err) {
      inputError = err;
    } finally {
      inputEnded = true;
      endIfDone();
    }
  })();
  for await (const answers of outgoing) {
    if (signal.aborted) return;
    yield* answers;
  }
  if (inputError !== undefined) throw inputError;
}

/** The model runtime's series, named like the Python runtime's (docs/metrics.md). */
class ModelMetrics {
  readonly requests: prom.Counter<"model" | "version" | "outcome">;
  readonly inputs: prom.Counter<"model" | "version" | "outcome">;
  readonly batchSize: prom.Histogram<"model" | "version">;
  readonly predictDuration: prom.Histogram<"model" | "version">;

  constructor(registry: prom.Registry) {
    const labelNames = ["model", "version", "outcome"] as const;
    this.requests = new prom.Counter({
      name: "clipper_model_requests_total",
      help: "Batches (Predict calls and PredictStream messages), by outcome (ok, model_error, invalid_input).",
      labelNames,
      registers: [registry],
    });
    this.inputs = new prom.Counter({
      name: "clipper_model_inputs_total",
      help: "Inputs predicted, by outcome of their output (ok, error).",
      labelNames,
      registers: [registry],
    });
    this.batchSize = new prom.Histogram({
      name: "clipper_model_batch_size",
      help: "Inputs per batch.",
      labelNames: ["model", "version"],
      buckets: [...batchSizeBuckets],
      registers: [registry],
    });
    this.predictDuration = new prom.Histogram({
      name: "clipper_model_predict_duration_seconds",
      help: "Time to answer one batch.",
      labelNames: ["model", "version"],
      buckets: [...defaultLatencyBuckets],
      registers: [registry],
    });
  }
}
