import { type Client, createClient } from "@connectrpc/connect";
import type { Inputs, Output } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService, type PredictStreamRequest } from "../../gen/clipper/model/v1/model_service_pb.js";
import {
  Code,
  type ConfigView,
  ConnectError,
  type GrpcTransport,
  type OpenStreamCall,
  replicaTransport,
  StreamCalls,
  speaksConnect,
  TurnBatches,
  traceFields,
} from "../shared/index.js";

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
export interface ReplicaClientPoolOptions {
  /** Opens the channel to a replica (default: a grpc-js transport to its address). */
  connect?: (address: string) => GrpcTransport;
  /** Batches on one PredictStream per replica (default), or one unary Predict call each. */
  streams?: boolean;
}

export class ReplicaClientPool implements ModelClientFactory {
  private readonly clients = new Map<string, { transport: GrpcTransport; client: ModelClient & { close?: () => void } }>();
  private readonly connect: (address: string) => GrpcTransport;
  private readonly streams: boolean;

  constructor(options: ReplicaClientPoolOptions = {}) {
    this.connect = options.connect ?? replicaTransport;
    this.streams = options.streams ?? true;
  }

  clientFor(endpoint: string): ModelClient {
    const existing = this.clients.get(endpoint);
    if (existing) return existing.client;
    const transport = this.connect(endpoint);
    const grpcClient = createClient(ModelService, transport);
    // A Connect endpoint (an R container, HTTP/1.1) carries unary calls only.
    const client = this.streams && !speaksConnect(endpoint) ? new ReplicaStreamClient(grpcClient) : unaryModelClient(grpcClient);
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

interface OpenBatch extends OpenStreamCall<Output[]> {
  inputs: Inputs;
  batchId: bigint;
  signal: AbortSignal;
  /** Date.now() by which the batch fails with DEADLINE_EXCEEDED, as a unary call's deadline would. */
  deadline: number;
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
  private readonly batches: StreamCalls<Output[], OpenBatch>;
  private readonly outgoing = new TurnBatches<PredictStreamRequest>();
  private readonly abort = new AbortController();

  constructor(
    client: Client<typeof ModelService>,
    /** Takes the open batches when the container does not serve PredictStream. */
    unsupported: (batches: readonly OpenBatch[]) => void,
  ) {
    this.batches = new StreamCalls({ peer: "the replica", stream: "predict stream", method: "PredictStream" }, () => this.outgoing.close(), unsupported);
    const responses = client.predictStream(this.requests(), { signal: this.abort.signal });
    void this.batches.receive(responses, (r) => this.batches.answer(r.batchId, r.errorCode, r.errorMessage, r.outputs));
  }

  get ended(): boolean {
    return this.batches.ended;
  }

  send(inputs: Inputs, batchId: bigint, signal: AbortSignal, timeoutMs: number): Promise<Output[]> {
    if (this.batches.has(batchId)) return Promise.reject(new ConnectError(`batch ${batchId} is already open on this replica`, Code.Internal));
    this.outgoing.push({ $typeName: "clipper.model.v1.PredictStreamRequest", batchId, inputs, ...traceFields() });
    return new Promise<Output[]>((resolve, reject) => {
      const timer = setTimeout(
        () => this.batches.fail(batchId, new ConnectError("the replica did not answer by the deadline", Code.DeadlineExceeded)),
        timeoutMs,
      );
      const onAbort = () => this.batches.fail(batchId, new ConnectError("the batch was cancelled", Code.Canceled));
      signal.addEventListener("abort", onAbort, { once: true });
      const release = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
      };
      this.batches.add(batchId, { inputs, batchId, signal, deadline: Date.now() + timeoutMs, resolve, reject, release });
    });
  }

  close(): void {
    this.batches.end(new ConnectError("the router is closing the replica's stream", Code.Unavailable));
    this.abort.abort();
  }

  private async *requests(): AsyncGenerator<PredictStreamRequest> {
    for await (const batch of this.outgoing) {
      if (this.batches.ended) return;
      yield* batch;
    }
  }
}

/** Every replica endpoint the configuration names, whatever its state. */
export function replicaEndpoints(view: ConfigView): Set<string> {
  const out = new Set<string>();
  for (const set of view.replicaSets.values()) for (const r of set.replicas) if (r.endpoint !== "") out.add(r.endpoint);
  return out;
}
