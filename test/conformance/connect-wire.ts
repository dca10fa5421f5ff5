import http from "node:http";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Inputs, Output } from "../../gen/clipper/common/v1/data_pb.js";
import {
  type CheckReadinessResponse,
  CheckReadinessResponseSchema,
  type GetMetadataResponse,
  GetMetadataResponseSchema,
  PredictRequestSchema,
  PredictResponseSchema,
} from "../../gen/clipper/model/v1/model_service_pb.js";
import { HealthCheckRequestSchema, type HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { type BatchStream, CallError, type CallOptions, type ModelConnection, type PendingCall, Status, Unsupported } from "./wire.js";

// A plain Connect-protocol client of clipper.model.v1.ModelService and grpc.health.v1 Check over
// HTTP/1.1 (unary calls: POST, application/proto, connect-timeout-ms), for containers in languages
// without gRPC (R). Written on node:http so that it sends exactly the bytes a check asks for and sees
// what comes back, as the gRPC ModelWire does with grpc-js.

const MODEL = "/clipper.model.v1.ModelService";
const NO_STREAMS = "PredictStream and Watch need HTTP/2 streams: not offered over the Connect protocol on HTTP/1.1 (unary calls only)";

/** Connect's error codes by name, as gRPC numbers them. */
const CODES: Record<string, number> = {
  canceled: Status.CANCELLED,
  unknown: Status.UNKNOWN,
  invalid_argument: Status.INVALID_ARGUMENT,
  deadline_exceeded: Status.DEADLINE_EXCEEDED,
  not_found: Status.NOT_FOUND,
  already_exists: Status.ALREADY_EXISTS,
  permission_denied: Status.PERMISSION_DENIED,
  resource_exhausted: Status.RESOURCE_EXHAUSTED,
  failed_precondition: Status.FAILED_PRECONDITION,
  aborted: Status.ABORTED,
  out_of_range: Status.OUT_OF_RANGE,
  unimplemented: Status.UNIMPLEMENTED,
  internal: Status.INTERNAL,
  unavailable: Status.UNAVAILABLE,
  data_loss: Status.DATA_LOSS,
  unauthenticated: Status.UNAUTHENTICATED,
};

/** The code of an error answer without a Connect error body: Connect's mapping from HTTP statuses. */
function codeOfHttpStatus(status: number): number {
  if (status === 400) return Status.INTERNAL;
  if (status === 401) return Status.UNAUTHENTICATED;
  if (status === 403) return Status.PERMISSION_DENIED;
  if (status === 404) return Status.UNIMPLEMENTED;
  if (status === 429 || status === 502 || status === 503 || status === 504) return Status.UNAVAILABLE;
  return Status.UNKNOWN;
}

export class ConnectModelWire implements ModelConnection {
  readonly streams = false;
  // A connection per call, as the router's replicaTransport does (a reused one stalls 40 ms on httpuv's answers).
  private readonly agent = new http.Agent({ keepAlive: false, maxSockets: 64 });
  private readonly host: string;
  private readonly port: number;

  constructor(readonly address: string) {
    const at = address.lastIndexOf(":");
    this.host = address.slice(0, at);
    this.port = Number(address.slice(at + 1));
  }

  close(): void {
    this.agent.destroy();
  }

  private call(path: string, body: Uint8Array, options: CallOptions): PendingCall<Buffer> {
    let req: http.ClientRequest | undefined;
    let settle: ((err: CallError) => void) | undefined;
    const result = new Promise<Buffer>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        fn();
      };
      settle = (err) => finish(() => reject(err));
      let answered = false;
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              settle?.(new CallError(Status.DEADLINE_EXCEEDED, `no answer within the ${options.timeoutMs} ms deadline`));
              req?.destroy();
            }, options.timeoutMs);
      req = http.request(
        {
          host: this.host,
          port: this.port,
          path,
          method: "POST",
          agent: this.agent,
          headers: {
            "content-type": "application/proto",
            "connect-protocol-version": "1",
            "content-length": body.length,
            ...(options.timeoutMs !== undefined ? { "connect-timeout-ms": String(options.timeoutMs) } : {}),
          },
        },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (err) => settle?.(new CallError(Status.UNAVAILABLE, err.message)));
          res.on("end", () => {
            const bytes = Buffer.concat(chunks);
            if (res.statusCode === 200) return finish(() => resolve(bytes));
            settle?.(errorOf(res.statusCode ?? 0, String(res.headers["content-type"] ?? ""), bytes));
          });
        },
      );
      // A server that refuses a body before reading all of it (too large) answers, then closes: writing the
      // rest fails, but its answer is what counts. So a write error waits a moment for that answer.
      req.on("error", (err) => {
        if (answered) return;
        setTimeout(() => {
          if (!answered) settle?.(new CallError(Status.UNAVAILABLE, err.message));
        }, 200).unref();
      });
      req.end(body);
    });
    return {
      result,
      cancel: () => {
        settle?.(new CallError(Status.CANCELLED, "cancelled by the caller"));
        req?.destroy();
      },
    };
  }

  predictCall(inputs: Inputs, options: CallOptions & { batchId?: bigint } = {}): PendingCall<Output[]> {
    const request = toBinary(PredictRequestSchema, create(PredictRequestSchema, { inputs, batchId: options.batchId ?? 0n }));
    const call = this.call(`${MODEL}/Predict`, request, options);
    return { result: call.result.then((b) => fromBinary(PredictResponseSchema, b).outputs), cancel: call.cancel };
  }

  predict(inputs: Inputs, options: CallOptions & { batchId?: bigint } = {}): Promise<Output[]> {
    return this.predictCall(inputs, options).result;
  }

  predictRaw(request: Buffer, options: CallOptions = {}): Promise<Output[]> {
    return this.call(`${MODEL}/Predict`, request, options).result.then((b) => fromBinary(PredictResponseSchema, b).outputs);
  }

  async metadata(options: CallOptions = {}): Promise<GetMetadataResponse> {
    return fromBinary(GetMetadataResponseSchema, await this.call(`${MODEL}/GetMetadata`, new Uint8Array(0), options).result);
  }

  async readiness(options: CallOptions = {}): Promise<CheckReadinessResponse> {
    return fromBinary(CheckReadinessResponseSchema, await this.call(`${MODEL}/CheckReadiness`, new Uint8Array(0), options).result);
  }

  async health(service = "", options: CallOptions = {}): Promise<HealthCheckResponse_ServingStatus> {
    const request = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
    return fromBinary(HealthCheckResponseSchema, await this.call("/grpc.health.v1.Health/Check", request, options).result).status;
  }

  watchFirst(): Promise<HealthCheckResponse_ServingStatus> {
    return Promise.reject(new Unsupported(NO_STREAMS));
  }

  stream(): BatchStream {
    throw new Unsupported(NO_STREAMS);
  }
}

function errorOf(httpStatus: number, contentType: string, body: Buffer): CallError {
  if (contentType.startsWith("application/json")) {
    try {
      const parsed = JSON.parse(body.toString("utf8")) as { code?: unknown; message?: unknown };
      const code = typeof parsed.code === "string" ? CODES[parsed.code] : undefined;
      if (code !== undefined) return new CallError(code, typeof parsed.message === "string" ? parsed.message : "");
    } catch {
      // Not a Connect error body: fall back to the HTTP status below.
    }
  }
  return new CallError(codeOfHttpStatus(httpStatus), `HTTP ${httpStatus}: ${body.toString("utf8").slice(0, 200)}`);
}
