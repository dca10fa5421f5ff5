import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  DataType,
  type GRPCInferenceService,
  type ModelInferRequest,
  type ModelInferResponseSchema,
  type ModelStreamInferResponseSchema,
} from "../../../gen/inference/grpc_predict_v2_pb.js";
import { ConnectError, cancelSignalOf, invalidArgument } from "../../shared/index.js";
import { presentedKey } from "../app-keys.js";
import type { Readiness } from "../readiness.js";
import type { InferAnswer, OipInference } from "./infer.js";
import { inferCallFromGrpc } from "./infer-request.js";
import { modelConfig, modelMetadata, modelReadiness, repositoryIndex, SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from "./models.js";
import { encodeRaw } from "./tensors.js";

export interface OipGrpcOptions {
  inference: OipInference;
  readiness: () => Promise<Readiness>;
  /** Requests of one ModelStreamInfer stream answered at once; the stream is read no further until one finishes. */
  streamMaxInFlight: number;
}

type InferResponseInit = MessageInitShape<typeof ModelInferResponseSchema>;
type StreamResponseInit = MessageInitShape<typeof ModelStreamInferResponseSchema>;

/** inference.GRPCInferenceService: the Open Inference Protocol over gRPC, with Triton's ModelStreamInfer. */
export function createInferenceServiceImpl(options: OipGrpcOptions): ServiceImpl<typeof GRPCInferenceService> {
  const { inference } = options;

  const infer = (req: ModelInferRequest, ctx: HandlerContext): Promise<InferResponseInit> => {
    const receivedAt = performance.now();
    if (req.modelName === "") return Promise.reject(invalidArgument("model_name is missing"));
    return inference
      .infer(req.modelName, () => inferCallFromGrpc(req), {
        protocol: "oip-grpc",
        key: presentedKey(ctx.requestHeader),
        // A unary call's cheap Cancellation (not an AbortController per call); a stream's own signal.
        signal: cancelSignalOf(ctx),
        transportTimeoutMs: ctx.timeoutMs(),
        receivedAt,
      })
      .then(inferResponse);
  };

  return {
    serverLive: () => ({ live: true }),
    serverReady: async () => ({ ready: (await options.readiness()).ready }),
    serverMetadata: () => ({ name: SERVER_NAME, version: SERVER_VERSION, extensions: [...SERVER_EXTENSIONS] }),
    modelReady(req) {
      const app = inference.application(req.name);
      return { ready: modelReadiness(inference.view(), app, req.version).ready };
    },
    modelMetadata(req) {
      const app = inference.application(req.name);
      const metadata = modelMetadata(inference.view(), app, req.version);
      const tensors = (list: typeof metadata.inputs) => list.map((t) => ({ ...t, shape: t.shape.map(BigInt) }));
      return { ...metadata, inputs: tensors(metadata.inputs), outputs: tensors(metadata.outputs) };
    },
    modelConfig(req) {
      const config = modelConfig(inference.view(), inference.application(req.name), req.version);
      const tensors = (list: typeof config.input) => list.map((t) => ({ name: t.name, dataType: dataTypeOf(t.data_type), dims: t.dims.map(BigInt) }));
      return {
        config: {
          name: config.name,
          platform: config.platform,
          backend: config.backend,
          maxBatchSize: config.max_batch_size,
          input: tensors(config.input),
          output: tensors(config.output),
        },
      };
    },
    repositoryIndex: (req) => ({ models: repositoryIndex(inference.view(), req.ready) }),
    modelInfer: infer,
    async *modelStreamInfer(requests, ctx) {
      // Answers go out as they are ready (each carries its request's id), up to streamMaxInFlight at once; an
      // error answers that request alone and the stream stays open, as Triton's does.
      const answer = (req: ModelInferRequest): Promise<StreamResponseInit> =>
        infer(req, ctx).then(
          (inferResponse) => ({ inferResponse }),
          (err: unknown) => ({
            errorMessage: ConnectError.from(err).rawMessage,
            inferResponse: { id: req.id, modelName: req.modelName, modelVersion: req.modelVersion },
          }),
        );
      type Event = { kind: "request"; result: IteratorResult<ModelInferRequest> } | { kind: "answer"; key: number; response: StreamResponseInit };
      const iterator = requests[Symbol.asyncIterator]();
      const nextRequest = (): Promise<Event> => {
        const next = iterator.next().then((result): Event => ({ kind: "request", result }));
        // Marked handled: while the stream is at streamMaxInFlight nobody awaits it, and a broken stream must not be an unhandled rejection.
        next.catch(() => undefined);
        return next;
      };
      let reading: Promise<Event> | undefined = nextRequest();
      const running = new Map<number, Promise<Event>>();
      let sequence = 0;
      while (reading !== undefined || running.size > 0) {
        const waiting = [...running.values()];
        if (reading !== undefined && running.size < options.streamMaxInFlight) waiting.push(reading);
        const event = await Promise.race(waiting);
        if (event.kind === "answer") {
          running.delete(event.key);
          yield event.response;
        } else if (event.result.done) {
          reading = undefined;
        } else {
          const key = sequence++;
          running.set(
            key,
            answer(event.result.value).then((response) => ({ kind: "answer", key, response })),
          );
          reading = nextRequest();
        }
      }
    },
  };
}

function dataTypeOf(name: string): DataType {
  return DataType[name as keyof typeof DataType] ?? DataType.TYPE_INVALID;
}

/** gRPC answers carry every output in raw_output_contents, as Triton's do (tritonclient reads them from there). */
function inferResponse(answer: InferAnswer): InferResponseInit {
  return {
    modelName: answer.modelName,
    modelVersion: answer.modelVersion,
    id: answer.id,
    outputs: answer.outputs.map(({ tensor }) => ({ name: tensor.name, datatype: tensor.datatype, shape: tensor.shape.map(BigInt) })),
    rawOutputContents: answer.outputs.map(({ tensor }) => encodeRaw(tensor)),
  };
}
