import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Inputs, Output } from "../../gen/clipper/common/v1/data_pb.js";
import {
  CheckReadinessRequestSchema,
  type CheckReadinessResponse,
  CheckReadinessResponseSchema,
  GetMetadataRequestSchema,
  type GetMetadataResponse,
  GetMetadataResponseSchema,
  PredictRequestSchema,
  PredictResponseSchema,
  PredictStreamRequestSchema,
  type PredictStreamResponse,
  PredictStreamResponseSchema,
} from "../../gen/clipper/model/v1/model_service_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";

// A plain grpc-js client of clipper.model.v1.ModelService and grpc.health.v1 that reads and writes
// messages with protobuf-es from gen/: nothing of the services' own codec or clients, so what the
// kit checks is the container, over the wire, as any gRPC client would see it.

const MODEL = "/clipper.model.v1.ModelService";
const HEALTH = "/grpc.health.v1.Health";

export { HealthCheckResponse_ServingStatus as ServingStatus };
export const Status = grpc.status;

/** A failed call: its gRPC status code and message. */
export class CallError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`${grpc.status[code] ?? code}: ${details}`);
    this.name = "CallError";
  }
}

export const statusName = (code: number): string => grpc.status[code] ?? String(code);

function toCallError(err: grpc.ServiceError | Error): CallError {
  const e = err as Partial<grpc.ServiceError>;
  return new CallError(e.code ?? grpc.status.UNKNOWN, e.details ?? err.message);
}

const serializer =
  <S extends DescMessage>(schema: S) =>
  (message: MessageShape<S>): Buffer =>
    Buffer.from(toBinary(schema, message));
const deserializer =
  <S extends DescMessage>(schema: S) =>
  (bytes: Buffer): MessageShape<S> =>
    fromBinary(schema, bytes);

export interface CallOptions {
  timeoutMs?: number;
}

/** A unary call that can be cancelled. */
export interface PendingCall<T> {
  readonly result: Promise<T>;
  cancel(): void;
}

/** One PredictStream: batches out, answers in, and how the call ended. */
export interface BatchStream {
  send(batchId: bigint, inputs: Inputs): void;
  /** Every answer received so far, in arrival order. */
  readonly answers: PredictStreamResponse[];
  /** Resolves when `count` answers in all have arrived; rejects when the call ends first or after timeoutMs. */
  waitForAnswers(count: number, timeoutMs: number): Promise<void>;
  /** Half-closes: no more batches. */
  end(): void;
  cancel(): void;
  /** How the call ended: OK, or its status. */
  readonly ended: Promise<{ code: grpc.status; details: string; atMs: number }>;
}

/** A part of the contract the connection's protocol cannot carry: the check that needs it is skipped. */
export class Unsupported extends Error {
  override name = "Unsupported";
}

/** What the checks call on a container, over gRPC (ModelWire) or the Connect protocol (ConnectModelWire). */
export interface ModelConnection {
  readonly address: string;
  /** Whether PredictStream and Watch can be called (false over Connect on HTTP/1.1). */
  readonly streams: boolean;
  predictCall(inputs: Inputs, options?: CallOptions & { batchId?: bigint }): PendingCall<Output[]>;
  predict(inputs: Inputs, options?: CallOptions & { batchId?: bigint }): Promise<Output[]>;
  predictRaw(request: Buffer, options?: CallOptions): Promise<Output[]>;
  metadata(options?: CallOptions): Promise<GetMetadataResponse>;
  readiness(options?: CallOptions): Promise<CheckReadinessResponse>;
  health(service?: string, options?: CallOptions): Promise<HealthCheckResponse_ServingStatus>;
  watchFirst(service?: string, timeoutMs?: number): Promise<HealthCheckResponse_ServingStatus>;
  stream(): BatchStream;
  close(): void;
}

export class ModelWire implements ModelConnection {
  readonly streams = true;
  private readonly client: grpc.Client;

  constructor(readonly address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      // The kit sends messages larger than any container should accept, and reads large answers.
      "grpc.max_send_message_length": -1,
      "grpc.max_receive_message_length": 512 * 1024 * 1024,
      // A container that is starting refuses connections: retry soon, not after grpc-js's 1 s and more.
      "grpc.initial_reconnect_backoff_ms": 50,
      "grpc.max_reconnect_backoff_ms": 200,
      "grpc.min_reconnect_backoff_ms": 50,
    });
  }

  close(): void {
    this.client.close();
  }

  private unary<I extends DescMessage, O extends DescMessage>(
    method: string,
    input: I,
    output: O,
    message: MessageInitShape<I>,
    options: CallOptions = {},
  ): PendingCall<MessageShape<O>> {
    return this.unaryBytes(method, serializer(input)(create(input, message)), deserializer(output), options);
  }

  private unaryBytes<T>(method: string, request: Buffer, read: (b: Buffer) => T, options: CallOptions): PendingCall<T> {
    let call: grpc.ClientUnaryCall | undefined;
    const result = new Promise<T>((resolve, reject) => {
      const callOptions: grpc.CallOptions = options.timeoutMs !== undefined ? { deadline: Date.now() + options.timeoutMs } : {};
      call = this.client.makeUnaryRequest(
        method,
        (b: Buffer) => b,
        read,
        request,
        new grpc.Metadata(),
        callOptions,
        (err: grpc.ServiceError | null, value?: T) => (err ? reject(toCallError(err)) : resolve(value as T)),
      );
    });
    return { result, cancel: () => call?.cancel() };
  }

  predictCall(inputs: Inputs, options: CallOptions & { batchId?: bigint } = {}): PendingCall<Output[]> {
    const call = this.unary(`${MODEL}/Predict`, PredictRequestSchema, PredictResponseSchema, { inputs, batchId: options.batchId ?? 0n }, options);
    return { result: call.result.then((r) => r.outputs), cancel: call.cancel };
  }

  predict(inputs: Inputs, options: CallOptions & { batchId?: bigint } = {}): Promise<Output[]> {
    return this.predictCall(inputs, options).result;
  }

  /** A Predict call whose request is these bytes, as written (for messages no protobuf library should build). */
  predictRaw(request: Buffer, options: CallOptions = {}): Promise<Output[]> {
    return this.unaryBytes(`${MODEL}/Predict`, request, (b) => fromBinary(PredictResponseSchema, b).outputs, options).result;
  }

  metadata(options: CallOptions = {}) {
    return this.unary(`${MODEL}/GetMetadata`, GetMetadataRequestSchema, GetMetadataResponseSchema, {}, options).result;
  }

  readiness(options: CallOptions = {}) {
    return this.unary(`${MODEL}/CheckReadiness`, CheckReadinessRequestSchema, CheckReadinessResponseSchema, {}, options).result;
  }

  async health(service = "", options: CallOptions = {}): Promise<HealthCheckResponse_ServingStatus> {
    const r = await this.unary(`${HEALTH}/Check`, HealthCheckRequestSchema, HealthCheckResponseSchema, { service }, options).result;
    return r.status;
  }

  /** The first status a Watch call answers. */
  watchFirst(service = "", timeoutMs = 5000): Promise<HealthCheckResponse_ServingStatus> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeServerStreamRequest(
        `${HEALTH}/Watch`,
        serializer(HealthCheckRequestSchema),
        deserializer(HealthCheckResponseSchema),
        create(HealthCheckRequestSchema, { service }),
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
      );
      call.once("data", (r: { status: HealthCheckResponse_ServingStatus }) => {
        resolve(r.status);
        call.cancel();
      });
      call.once("error", (err: grpc.ServiceError) => reject(toCallError(err)));
    });
  }

  stream(): BatchStream {
    const call = this.client.makeBidiStreamRequest(`${MODEL}/PredictStream`, serializer(PredictStreamRequestSchema), deserializer(PredictStreamResponseSchema));
    const answers: PredictStreamResponse[] = [];
    const waiters = new Set<() => void>();
    let endedWith: { code: grpc.status; details: string; atMs: number } | undefined;
    const ended = new Promise<{ code: grpc.status; details: string; atMs: number }>((resolve) => {
      const finish = (code: grpc.status, details: string) => {
        if (endedWith !== undefined) return;
        endedWith = { code, details, atMs: performance.now() };
        resolve(endedWith);
        for (const w of waiters) w();
      };
      call.on("status", (s: grpc.StatusObject) => finish(s.code, s.details));
      call.on("error", (err: grpc.ServiceError) => finish(err.code ?? grpc.status.UNKNOWN, err.details ?? err.message));
    });
    call.on("data", (r: PredictStreamResponse) => {
      answers.push(r);
      for (const w of waiters) w();
    });
    return {
      answers,
      ended,
      send: (batchId, inputs) => void call.write(create(PredictStreamRequestSchema, { batchId, inputs })),
      end: () => call.end(),
      cancel: () => call.cancel(),
      waitForAnswers: (count, timeoutMs) =>
        new Promise<void>((resolve, reject) => {
          const check = () => {
            if (answers.length >= count) done(() => resolve());
            else if (endedWith !== undefined)
              done(() =>
                reject(new Error(`the stream ended (${statusName(endedWith!.code)}: ${endedWith!.details}) after ${answers.length} of ${count} answers`)),
              );
          };
          const timer = setTimeout(() => done(() => reject(new Error(`${answers.length} of ${count} answers within ${timeoutMs} ms`))), timeoutMs);
          const done = (then: () => void) => {
            clearTimeout(timer);
            waiters.delete(check);
            then();
          };
          waiters.add(check);
          check();
        }),
    };
  }
}
