import { type Client, createClient } from "@connectrpc/connect";
import type { Inputs, Output } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService, type PredictStreamRequest, type PredictStreamResponse } from "../../gen/clipper/model/v1/model_service_pb.js";
import { Code, type ConfigView, ConnectError, createGrpcTransport, type GrpcTransport, injectTraceContext, TurnBatches } from "../shared/index.js";

/** What the query path needs from a model replica: one batch in, one output per input out. */
export interface ModelClient {
  predict(inputs: Inputs, batchId: bigint, options: { signal: AbortSignal; timeoutMs: number }): Promise<Output[]>;
}

export const MODEL_CALLS = ["stream", "unary"] as const;
export type ModelCalls = (typeof MODEL_CALLS)[number];

export interface ModelClientFactory {
  /** The client for a replica's host:port. */
  clientFor(endpoint: string): ModelClient;
}

/**
 * One persistent grpc-js channel per replica endpoint, created on first use
 * and closed when the endpoint leaves the configuration (`retain`). Batches
 * travel on the replica's PredictStream (`ReplicaStreamClient`), or as unary
 * Predict calls when `streams` is off.
 */
export class ReplicaClientPool implements ModelClientFactory {
  private readonly clients = new Map<string, { transport: GrpcTransport; client: ModelClient & { close?: () => void } }>();

  constructor(
    private readonly connect: (address: string) => GrpcTransport = (address) => createGrpcTransport({ address }),
    private readonly streams = true,
  ) {}

  clientFor(endpoint: string): ModelClient {
    const existing = this.clients.get(endpoint);
    if (existing) return existing.client;
    const transport = this.connect(endpoint);
    const grpcClient = createClient(ModelService, transport);
    const client = this.streams ? new ReplicaStreamClient(grpcClient) : unaryModelClient(grpcClient);
    this.clients.set(endpoint, { transport, client });
    return client;
  }

  /** Closes the channels of endpoints not in `endpoints`. */
  retain(endpoints: ReadonlySet<string>): void {
    for (const [endpoint, { transport, client }] of this.clients) {
      if (endpoints.has(endpoint)) continue;
      client.close?.();
      transport.close();
      this.clients.delete(endpoint);
    }
  }

  endpoints(): string[] {
    return [...this.clients.keys()];
  }

  close(): void {
    this.retain(new Set());
  }
}

/** One unary ModelService.Predict call per batch. */
export function unaryModelClient(client: Client<typeof ModelService>): ModelClient {
  return {
    async predict(inputs, batchId, { signal, timeoutMs }) {
      const res = await client.predict({ inputs, batchId }, { signal, timeoutMs });
      return res.outputs;
    },
  };
}

interface OpenBatch {
  inputs: Inputs;
  batchId: bigint;
  signal: AbortSignal;
  /** Date.now() by which the batch fails with DEADLINE_EXCEEDED, as a unary call's deadline would. */
  deadline: number;
  resolve: (outputs: Output[]) => void;
  reject: (err: ConnectError) => void;
  /** Clears the deadline timer and the abort listener. */
  release: () => void;
}

/**
 * A replica's batches on one long-lived ModelService.PredictStream: a stream
 * message costs the router and the container a fraction of a unary call
 * (bench/RESULTS.md). The stream opens on first use and again after it ends;
 * batches open on a stream that breaks fail with UNAVAILABLE (retried on
 * another replica, as for a unary call to a lost replica). A batch whose
 * caller aborts or whose deadline passes fails at once; the container still
 * finishes it, and its answer is dropped. A container that answers
 * UNIMPLEMENTED (one serving Predict alone) gets unary calls from then on,
 * its open batches included.
 */
export class ReplicaStreamClient implements ModelClient {
  private current: ReplicaStream | undefined;
  private readonly unary: ModelClient;
  private streamUnsupported = false;

  constructor(private readonly client: Client<typeof ModelService>) {
    this.unary = unaryModelClient(client);
  }

  predict(inputs: Inputs, batchId: bigint, options: { signal: AbortSignal; timeoutMs: number }): Promise<Output[]> {
    if (this.streamUnsupported) return this.unary.predict(inputs, batchId, options);
    if (options.signal.aborted) return Promise.reject(new ConnectError("the batch was cancelled before it was sent", Code.Canceled));
    if (this.current === undefined || this.current.ended) this.current = new ReplicaStream(this.client, (batches) => this.fallBack(batches));
    return this.current.send(inputs, batchId, options.signal, options.timeoutMs);
  }

  close(): void {
    this.current?.close();
    this.current = undefined;
  }

  private fallBack(batches: readonly OpenBatch[]): void {
    this.streamUnsupported = true;
    for (const b of batches) {
      const timeoutMs = b.deadline - Date.now();
      if (timeoutMs <= 0) b.reject(new ConnectError("the replica did not answer by the deadline", Code.DeadlineExceeded));
      else this.unary.predict(b.inputs, b.batchId, { signal: b.signal, timeoutMs }).then(b.resolve, (err: unknown) => b.reject(ConnectError.from(err)));
    }
  }
}

/** One PredictStream call and the batches open on it. */
class ReplicaStream {
  ended = false;
  private readonly open = new Map<bigint, OpenBatch>();
  private readonly outgoing = new TurnBatches<PredictStreamRequest>();
  private readonly abort = new AbortController();

  constructor(
    client: Client<typeof ModelService>,
    /** Takes the open batches when the container does not serve PredictStream. */
    private readonly unsupported: (batches: readonly OpenBatch[]) => void,
  ) {
    void this.receive(client.predictStream(this.requests(), { signal: this.abort.signal }));
  }

  send(inputs: Inputs, batchId: bigint, signal: AbortSignal, timeoutMs: number): Promise<Output[]> {
    if (this.open.has(batchId)) return Promise.reject(new ConnectError(`batch ${batchId} is already open on this replica`, Code.Internal));
    let traceparent = "";
    let tracestate = "";
    injectTraceContext({ set: (key, value) => (key === "traceparent" ? (traceparent = value) : key === "tracestate" ? (tracestate = value) : undefined) });
    this.outgoing.push({ $typeName: "clipper.model.v1.PredictStreamRequest", batchId, inputs, traceparent, tracestate });
    return new Promise<Output[]>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(batchId, new ConnectError("the replica did not answer by the deadline", Code.DeadlineExceeded)), timeoutMs);
      const onAbort = () => this.fail(batchId, new ConnectError("the batch was cancelled", Code.Canceled));
      signal.addEventListener("abort", onAbort, { once: true });
      const release = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
      };
      this.open.set(batchId, { inputs, batchId, signal, deadline: Date.now() + timeoutMs, resolve, reject, release });
    });
  }

  close(): void {
    this.end(new ConnectError("the router is closing the replica's stream", Code.Unavailable));
    this.abort.abort();
  }

  private fail(batchId: bigint, error: ConnectError): void {
    const batch = this.open.get(batchId);
    if (batch === undefined) return;
    this.open.delete(batchId);
    batch.release();
    batch.reject(error);
  }

  private async *requests(): AsyncGenerator<PredictStreamRequest> {
    for await (const batch of this.outgoing) {
      if (this.ended) return;
      yield* batch;
    }
  }

  private async receive(responses: AsyncIterable<PredictStreamResponse>): Promise<void> {
    try {
      for await (const response of responses) this.answer(response);
      this.end(new ConnectError("the replica ended the predict stream", Code.Unavailable));
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unimplemented) {
        this.handOver();
        return;
      }
      this.end(new ConnectError(`the predict stream to the replica failed: ${e.rawMessage}`, e.code === Code.Canceled ? Code.Unavailable : e.code));
    }
  }

  private answer(response: PredictStreamResponse): void {
    const batch = this.open.get(response.batchId);
    if (batch === undefined) return;
    this.open.delete(response.batchId);
    batch.release();
    if (response.errorCode === 0) batch.resolve(response.outputs);
    else batch.reject(new ConnectError(response.errorMessage, response.errorCode as Code));
  }

  private handOver(): void {
    const batches = [...this.open.values()];
    this.open.clear();
    for (const b of batches) b.release();
    this.end(new ConnectError("the replica does not serve PredictStream", Code.Unimplemented));
    this.unsupported(batches);
  }

  /** The stream is over: every open batch fails with `error`, and the next batch opens a new stream. */
  private end(error: ConnectError): void {
    if (this.ended) return;
    this.ended = true;
    for (const b of this.open.values()) {
      b.release();
      b.reject(error);
    }
    this.open.clear();
    this.outgoing.close();
  }
}

/** Every replica endpoint the configuration names, whatever its state. */
export function replicaEndpoints(view: ConfigView): Set<string> {
  const out = new Set<string>();
  for (const set of view.replicaSets.values()) for (const r of set.replicas) if (r.endpoint !== "") out.add(r.endpoint);
  return out;
}
