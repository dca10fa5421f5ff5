import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type prom from "prom-client";
import { Code, invalidArgument, StatusError } from "./errors.js";
import type { Inputs, InputType, OutputSchema } from "./gen/clipper/common/v1/data_pb.js";
import {
  type CheckReadinessRequestSchema,
  type CheckReadinessResponseSchema,
  type GetMetadataRequestSchema,
  type GetMetadataResponseSchema,
  ModelService,
  type PredictRequestSchema,
  type PredictResponseSchema,
  type PredictStreamRequest,
  type PredictStreamRequestSchema,
  type PredictStreamResponseSchema,
} from "./gen/clipper/model/v1/model_service_pb.js";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import { grpcServiceDefinition, grpcStatus, type Received, UndecodableRequest } from "./grpc-service.js";
import { ServingHealth } from "./health.js";
import { inputCount, inputTypeName, validateInputs } from "./inputs.js";
import { ModelMetrics } from "./metrics.js";
import { type Model, runModel } from "./model.js";
import { inServerSpan, setSpanAttributes, type TraceFields } from "./tracing.js";

/** Where serveModel reports (pino's Logger fits). */
export interface Logger {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

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

export interface RunningModelServer {
  readonly port: number;
  /** host:port, for a client. */
  readonly address: string;
  /**
   * Stops gracefully: health turns NOT_SERVING, no new call is accepted, each
   * open PredictStream reads no more batches (one arriving now is answered
   * UNAVAILABLE, for the router to retry elsewhere) and ends once its batches
   * in flight are answered; running unary calls finish. After drainTimeoutMs
   * whatever still runs is cut.
   */
  close(drainTimeoutMs?: number): Promise<void>;
}

type Outputs = Array<MessageInitShape<typeof OutputSchema>>;
type StreamAnswer = MessageInitShape<typeof PredictStreamResponseSchema>;
type StreamCall = grpc.ServerDuplexStream<Received<typeof PredictStreamRequestSchema>, StreamAnswer>;

/** A unary Predict's span and a streamed batch's span have one name, so traces read the same either way. */
const PREDICT_SPAN = `${ModelService.typeName}/${ModelService.method.predict.name}`;
const PREDICT_SPAN_ATTRIBUTES = { "rpc.system": "grpc", "rpc.service": ModelService.typeName, "rpc.method": ModelService.method.predict.name };

/** Batches open at once on one PredictStream; the router keeps a few per replica, so more is a misbehaving caller. */
const MAX_OPEN_BATCHES = 1024;

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** How long close() lets batches in flight finish: under the container-manager's 5 s from SIGTERM to SIGKILL. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 4000;

/**
 * Serves a model as clipper.model.v1.ModelService, with grpc.health.v1, on a
 * grpc-js server. Model failures become per-input errors; only a malformed
 * request fails the call (or, on a PredictStream, its batch).
 */
export async function serveModel(model: Model, options: ServeModelOptions): Promise<RunningModelServer> {
  const host = options.host ?? "127.0.0.1";
  const maxBatchSize = options.maxBatchSize ?? 0;
  const maxBatch = maxBatchSize > 0 ? maxBatchSize : Number.MAX_SAFE_INTEGER;
  const metrics = options.metrics === undefined ? undefined : new ModelMetrics(options.metrics);
  const labels = { model: options.name, version: options.version };
  const logger = options.logger;

  /** One batch: validated, run, counted. Model failures are per-input errors; bad inputs throw INVALID_ARGUMENT. */
  async function predictBatch(inputs: Inputs | undefined): Promise<Outputs> {
    const startedAt = performance.now();
    try {
      if (inputs === undefined) throw invalidArgument("inputs is missing");
      validateInputs(inputs, options.inputType, maxBatch);
    } catch (err) {
      metrics?.requests.inc({ ...labels, outcome: "invalid_input" });
      throw err;
    }
    const size = inputCount(inputs);
    setSpanAttributes({ "clipper.model": options.name, "clipper.model_version": options.version, "clipper.batch_size": size });
    const outcomes = await runModel(model, inputs);
    if (metrics !== undefined) {
      const errors = outcomes.filter((o) => !("value" in o)).length;
      metrics.requests.inc({ ...labels, outcome: errors === size && size > 0 ? "model_error" : "ok" });
      metrics.inputs.inc({ ...labels, outcome: "ok" }, size - errors);
      metrics.inputs.inc({ ...labels, outcome: "error" }, errors);
      metrics.batchSize.observe(labels, size);
      metrics.predictDuration.observe(labels, (performance.now() - startedAt) / 1000);
    }
    return outcomes.map((o) => ({ result: "value" in o ? { case: "value", value: o.value } : { case: "error", value: o.error } }));
  }

  const health = new ServingHealth(["", ModelService.typeName, Health.typeName]);
  /** Each open PredictStream's drain: stop taking batches, end once the open ones are answered. */
  const streamDrains = new Set<() => void>();
  const metadata: MessageInitShape<typeof GetMetadataResponseSchema> = {
    modelName: options.name,
    modelVersion: options.version,
    inputType: options.inputType,
    runtime: `node ${process.versions.node}`,
    maxBatchSize,
  };
  const server = new grpc.Server({ "grpc.max_receive_message_length": MAX_MESSAGE_BYTES, "grpc.max_send_message_length": MAX_MESSAGE_BYTES });
  server.addService(grpcServiceDefinition(ModelService), {
    Predict: unary<typeof PredictRequestSchema, typeof PredictResponseSchema>("Predict", logger, async (req, call) => {
      const parent: TraceFields = { traceparent: metadataValue(call.metadata, "traceparent"), tracestate: metadataValue(call.metadata, "tracestate") };
      // A SERVER span continuing the router's batch span (its traceparent metadata).
      return { outputs: await inServerSpan(PREDICT_SPAN, parent, PREDICT_SPAN_ATTRIBUTES, () => predictBatch(req.inputs)) };
    }),
    PredictStream: (call: StreamCall) =>
      answerStream(call, streamDrains, (req) => inServerSpan(PREDICT_SPAN, req, PREDICT_SPAN_ATTRIBUTES, () => predictBatch(req.inputs))),
    GetMetadata: unary<typeof GetMetadataRequestSchema, typeof GetMetadataResponseSchema>("GetMetadata", logger, async () => metadata),
    CheckReadiness: unary<typeof CheckReadinessRequestSchema, typeof CheckReadinessResponseSchema>("CheckReadiness", logger, async () => ({ ready: true })),
  });
  server.addService(grpcServiceDefinition(Health), health.handlers());
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(":") ? `[${host}]` : host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  logger?.info({ model: options.name, version: options.version, inputType: inputTypeName(options.inputType), port }, "model serving");
  return {
    port,
    address: `${host}:${port}`,
    close: async (drainTimeoutMs = DEFAULT_DRAIN_TIMEOUT_MS) => {
      health.stop();
      for (const drain of [...streamDrains]) drain();
      let timer: NodeJS.Timeout | undefined;
      // tryShutdown refuses new calls and resolves when the running ones (the draining streams among them) have ended.
      const drained = new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true)));
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, drainTimeoutMs, false)));
      if (!(await Promise.race([drained, timedOut]))) server.forceShutdown();
      clearTimeout(timer);
    },
  };
}

/** A unary handler from an async function; a request that did not decode is INVALID_ARGUMENT, an unexpected failure INTERNAL (and logged). */
function unary<I extends DescMessage, O extends DescMessage>(
  method: string,
  logger: Logger | undefined,
  fn: (req: Exclude<Received<I>, UndecodableRequest>, call: grpc.ServerUnaryCall<Received<I>, MessageInitShape<O>>) => Promise<MessageInitShape<O>>,
): grpc.handleUnaryCall<Received<I>, MessageInitShape<O>> {
  return (call, callback) => {
    const req = call.request;
    const answer = req instanceof UndecodableRequest ? Promise.reject(invalidArgument(req.reason)) : fn(req as Exclude<Received<I>, UndecodableRequest>, call);
    answer.then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (!(err instanceof StatusError)) logger?.error({ err, method: `${ModelService.typeName}/${method}` }, "unexpected error in handler");
        callback(grpcStatus(err, method));
      },
    );
  };
}

function metadataValue(metadata: grpc.Metadata, key: string): string {
  const value = metadata.get(key)[0];
  return typeof value === "string" ? value : "";
}

/**
 * Answers one PredictStream: each batch runs as it arrives (several may be
 * open, as with unary calls) and is answered by its batch_id when done. A batch
 * that fails as a whole is answered with its status code, and the stream goes
 * on. Ends when the caller has closed its side and every batch is answered; a
 * message that is not a PredictStreamRequest ends it INVALID_ARGUMENT once the
 * open batches are answered. While answers wait for the caller to read them,
 * no more batches are read. Once drained (the server is stopping), a new batch
 * is answered UNAVAILABLE and the stream ends when the open ones are answered.
 */
function answerStream(call: StreamCall, streamDrains: Set<() => void>, predict: (req: PredictStreamRequest) => Promise<Outputs>): void {
  let open = 0;
  let inputEnded = false;
  let draining = false;
  let finished = false;
  let failure: StatusError | undefined;
  let paused = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    streamDrains.delete(drain);
    if (failure === undefined) call.end();
    else call.emit("error", grpcStatus(failure, "PredictStream"));
  };
  const endIfDone = () => {
    if ((inputEnded || draining) && open === 0) finish();
  };
  const drain = () => {
    draining = true;
    endIfDone();
  };
  const answer = (message: StreamAnswer) => {
    open--;
    if (!finished && !call.write(message) && !paused) {
      paused = true;
      call.pause();
      call.once("drain", () => {
        paused = false;
        call.resume();
      });
    }
    endIfDone();
  };
  streamDrains.add(drain);
  call.once("cancelled", () => {
    finished = true;
    streamDrains.delete(drain);
  });
  call.on("data", (req: Received<typeof PredictStreamRequestSchema>) => {
    if (inputEnded) return;
    if (req instanceof UndecodableRequest) {
      failure = invalidArgument(req.reason);
      inputEnded = true;
      endIfDone();
      return;
    }
    const batchId = req.batchId;
    open++;
    if (draining) {
      answer({ batchId, errorCode: Code.Unavailable, errorMessage: "the model server is stopping; send the batch to another replica" });
      return;
    }
    if (open > MAX_OPEN_BATCHES) {
      answer({ batchId, errorCode: Code.ResourceExhausted, errorMessage: `${MAX_OPEN_BATCHES} batches are open on this stream, its limit` });
      return;
    }
    predict(req).then(
      (outputs) => answer({ batchId, outputs }),
      (err: unknown) =>
        answer(
          err instanceof StatusError
            ? { batchId, errorCode: err.code, errorMessage: err.message }
            : { batchId, errorCode: Code.Unknown, errorMessage: err instanceof Error ? err.message : String(err) },
        ),
    );
  });
  call.once("end", () => {
    inputEnded = true;
    endIfDone();
  });
}
