import type { Client } from "@connectrpc/connect";
import type { Inputs } from "../../gen/clipper/common/v1/data_pb.js";
import type { QueryResult, QueryService, QueryStreamRequest, StreamedQuery } from "../../gen/clipper/v1/query_service_pb.js";
import { type CancelSignal, Code, ConnectError, type OpenStreamCall, StreamCalls, TurnBatches, toAbortSignal, traceFields } from "../shared/index.js";

export interface RouterQuery {
  application: string;
  inputs: Inputs;
  version: string;
  uid: string;
}

/** How queries reach the router: one unary Query call each, or multiplexed on a RouterStream. */
export type QueryRouter = (query: RouterQuery, timeoutMs: number, signal: CancelSignal | undefined) => Promise<QueryResult[]>;

/** One unary QueryService.Query call per query: what a gateway does with --router-calls unary. */
export function unaryQueryRouter(client: Client<typeof QueryService>): QueryRouter {
  return async (query, timeoutMs, signal) => (await client.query(query, { timeoutMs, ...(signal ? { signal: toAbortSignal(signal) } : {}) })).results;
}

export interface RouterStreamOptions {
  /** How late past its deadline a call may still be answered before the gateway gives up on the router (ms; default 2000). */
  graceMs?: number;
  /** How often calls past deadline + grace are looked for (ms; default 250). */
  sweepIntervalMs?: number;
  /** Told once when the router turns out not to serve QueryStream. */
  onUnsupported?: () => void;
}

type StreamTimings = Required<Pick<RouterStreamOptions, "graceMs" | "sweepIntervalMs">>;

interface OpenCall extends OpenStreamCall<QueryResult[]> {
  /** What was asked, to ask again by a unary call if the router turns out not to serve QueryStream. */
  query: RouterQuery;
  timeoutMs: number;
  signal: CancelSignal | undefined;
  /** Date.now() after which the router is considered lost for this call. */
  giveUpAt: number;
}

/**
 * Every query of this gateway on one long-lived QueryStream to the router:
 * queries issued in the same turn of the event loop leave in one message, and
 * the router answers in batches the same way. The stream opens on first use
 * and again after it ends (router restart); calls open on a stream that ends
 * fail with UNAVAILABLE, as a unary call to a lost router would. A router that
 * does not serve QueryStream (UNIMPLEMENTED: an older router) gets unary
 * calls from then on, its open calls included. The number of open calls is
 * bounded by the caller (the Predictor's --max-in-flight).
 */
export class RouterStream {
  private current: QueryStreamConnection | undefined;
  private readonly unary: QueryRouter;
  private streamUnsupported = false;

  private readonly timings: StreamTimings;
  private readonly onUnsupported: () => void;

  constructor(
    private readonly client: Client<typeof QueryService>,
    options: RouterStreamOptions = {},
  ) {
    this.unary = unaryQueryRouter(client);
    this.timings = { graceMs: options.graceMs ?? 2000, sweepIntervalMs: options.sweepIntervalMs ?? 250 };
    this.onUnsupported = options.onUnsupported ?? (() => {});
  }

  query(query: RouterQuery, timeoutMs: number, signal: CancelSignal | undefined): Promise<QueryResult[]> {
    if (signal?.aborted) return Promise.reject(new ConnectError("the caller cancelled the call", Code.Canceled));
    if (this.streamUnsupported) return this.unary(query, timeoutMs, signal);
    if (this.current === undefined || this.current.ended) this.current = new QueryStreamConnection(this.client, this.timings, (calls) => this.fallBack(calls));
    return this.current.call(query, timeoutMs, signal);
  }

  /** The router answered UNIMPLEMENTED: ask it the old way, now and from now on. */
  private fallBack(calls: readonly OpenCall[]): void {
    if (!this.streamUnsupported) this.onUnsupported();
    this.streamUnsupported = true;
    for (const c of calls) this.unary(c.query, c.timeoutMs, c.signal).then(c.resolve, (err: unknown) => c.reject(ConnectError.from(err)));
  }

  /** Calls open on the current stream. */
  get openCalls(): number {
    return this.current?.openCalls ?? 0;
  }

  close(): void {
    this.current?.close();
    this.current = undefined;
  }
}

/** One QueryStream call and the queries open on it. */
class QueryStreamConnection {
  private readonly calls: StreamCalls<QueryResult[], OpenCall>;
  private nextCallId = 1n;
  /** Queries, and the ids of calls to cancel, issued in one turn of the event loop leave in one message. */
  private readonly outgoing = new TurnBatches<StreamedQuery | bigint>();
  private readonly abort = new AbortController();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    client: Client<typeof QueryService>,
    private readonly options: StreamTimings,
    /** Takes the open calls when the router does not serve QueryStream. */
    unsupported: (calls: readonly OpenCall[]) => void,
  ) {
    this.calls = new StreamCalls({ peer: "the router", stream: "query stream", method: "QueryStream" }, () => this.stopWriting(), unsupported);
    const responses = client.queryStream(this.requests(), { signal: this.abort.signal });
    void this.calls.receive(responses, (response) => {
      for (const a of response.answers) this.calls.answer(a.callId, a.errorCode, a.errorMessage, a.results);
    });
  }

  get ended(): boolean {
    return this.calls.ended;
  }

  get openCalls(): number {
    return this.calls.size;
  }

  call(query: RouterQuery, timeoutMs: number, signal: CancelSignal | undefined): Promise<QueryResult[]> {
    const callId = this.nextCallId++;
    this.outgoing.push({
      $typeName: "clipper.v1.StreamedQuery",
      callId,
      request: { $typeName: "clipper.v1.QueryRequest", ...query },
      timeoutMs: Math.min(0xffff_ffff, Math.max(1, Math.ceil(timeoutMs))),
      ...traceFields(),
    });
    this.sweeper ??= setInterval(() => this.sweep(), this.options.sweepIntervalMs).unref();
    return new Promise<QueryResult[]>((resolve, reject) => {
      let release = () => {};
      if (signal !== undefined) {
        const onAbort = () => this.drop(callId, new ConnectError("the caller cancelled the call", Code.Canceled));
        signal.addEventListener("abort", onAbort, { once: true });
        release = () => signal.removeEventListener("abort", onAbort);
      }
      this.calls.add(callId, { query, timeoutMs, signal, resolve, reject, release, giveUpAt: Date.now() + timeoutMs + this.options.graceMs });
    });
  }

  close(): void {
    this.calls.end(new ConnectError("the gateway is shutting down", Code.Unavailable));
    this.abort.abort();
  }

  /** Nobody waits for the call any more (its caller went away, or the router is overdue): it fails with `error`, and the router drops it. */
  private drop(callId: bigint, error: ConnectError): void {
    if (this.calls.fail(callId, error)) this.outgoing.push(callId);
  }

  /** Calls the router has not answered well past their deadline: it is stuck or gone; fail them rather than wait forever. */
  private sweep(): void {
    const now = Date.now();
    for (const [callId, entry] of this.calls.entries()) {
      if (now >= entry.giveUpAt) this.drop(callId, new ConnectError("the router did not answer by the deadline", Code.DeadlineExceeded));
    }
    if (this.calls.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private async *requests(): AsyncGenerator<QueryStreamRequest> {
    for await (const batch of this.outgoing) {
      // Nothing more is written on a stream that is over: its calls have failed already.
      if (this.calls.ended) return;
      const message: QueryStreamRequest = { $typeName: "clipper.v1.QueryStreamRequest", queries: [], cancelled: [] };
      for (const item of batch) {
        if (typeof item === "bigint") message.cancelled.push(item);
        else message.queries.push(item);
      }
      yield message;
    }
  }

  /** The stream is over: the next query opens a new one. */
  private stopWriting(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.outgoing.close();
  }
}
