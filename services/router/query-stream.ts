import { create } from "@bufbuild/protobuf";
import type { Inputs } from "../../gen/clipper/common/v1/data_pb.js";
import type { QueryStreamRequest, QueryStreamResponse, StreamedAnswer, StreamedQuery } from "../../gen/clipper/v1/query_service_pb.js";
import { QueryService, QueryStreamResponseSchema } from "../../gen/clipper/v1/query_service_pb.js";
import { Cancellation, Code, ConnectError, contextOfTraceFields, type Logger, SpanKind, TurnBatches, withSpan } from "../shared/index.js";
import type { Answers } from "./query-observer.js";
import type { QueryOptions } from "./query-processor.js";

/** What a stream needs from the query processor: QueryProcessor.query. */
export type Answer = (application: string, inputs: Inputs | undefined, options: QueryOptions) => Promise<Answers>;

export interface QueryStreamOptions {
  /** Calls open at once on one stream; past it a call is answered RESOURCE_EXHAUSTED at once. */
  maxOpenCalls: number;
  logger?: Logger;
}

/** The span a streamed query runs in: the same name as a unary Query call's, so traces read the same whichever the gateway used. */
const QUERY_SPAN = `${QueryService.typeName}/${QueryService.method.query.name}`;
const QUERY_SPAN_ATTRIBUTES = { "rpc.system": "grpc", "rpc.service": QueryService.typeName, "rpc.method": QueryService.method.query.name };

/**
 * The router's side of one QueryStream: runs each streamed query as its own
 * Query call, and sends the answers that complete in the same turn of the
 * event loop together, in one response message. Ends when the caller has
 * closed its side and every open call is answered, or at once when the
 * caller goes away (its open calls are cancelled).
 */
export class QueryStreamSession {
  private readonly open = new Map<bigint, Cancellation>();
  /** Answers completing in one turn of the event loop leave in one message. */
  private readonly outgoing = new TurnBatches<StreamedAnswer>();
  private inputEnded = false;
  private inputError: unknown;

  constructor(
    private readonly answer: Answer,
    private readonly options: QueryStreamOptions,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener(
      "abort",
      () => {
        for (const controller of this.open.values()) controller.abort();
        this.outgoing.close();
      },
      { once: true },
    );
  }

  /** The response messages; reads `requests` meanwhile. */
  async *run(requests: AsyncIterable<QueryStreamRequest>): AsyncGenerator<QueryStreamResponse> {
    void this.read(requests);
    for await (const answers of this.outgoing) {
      if (this.signal.aborted) return;
      yield create(QueryStreamResponseSchema, { answers });
    }
    if (this.inputError !== undefined) throw this.inputError;
  }

  /** Calls open right now. */
  get openCalls(): number {
    return this.open.size;
  }

  private async read(requests: AsyncIterable<QueryStreamRequest>): Promise<void> {
    try {
      for await (const message of requests) this.receive(message);
    } catch (err) {
      this.inputError = err;
    } finally {
      this.inputEnded = true;
      this.endIfDone();
    }
  }

  /** The caller has closed its side and every open call is answered: the stream ends. */
  private endIfDone(): void {
    if (this.inputEnded && this.open.size === 0) this.outgoing.close();
  }

  private receive(message: QueryStreamRequest): void {
    for (const id of message.cancelled) {
      const controller = this.open.get(id);
      if (controller === undefined) continue;
      this.open.delete(id);
      controller.abort();
    }
    for (const q of message.queries) this.start(q);
  }

  private start(q: StreamedQuery): void {
    const id = q.callId;
    if (this.open.has(id)) {
      this.outgoing.push(failure(id, Code.InvalidArgument, `call_id ${id} is already open on this stream: call ids must be unique among open calls`));
      return;
    }
    if (this.open.size >= this.options.maxOpenCalls) {
      this.outgoing.push(failure(id, Code.ResourceExhausted, `this stream has ${this.open.size} calls open, its limit (--max-stream-calls); retry shortly`));
      return;
    }
    const controller = new Cancellation();
    this.open.set(id, controller);
    const request = q.request;
    const parent = contextOfTraceFields(q);
    withSpan(QUERY_SPAN, { kind: SpanKind.SERVER, attributes: QUERY_SPAN_ATTRIBUTES, ...(parent ? { parent } : {}) }, () =>
      this.answer(request?.application ?? "", request?.inputs, {
        version: request?.version ?? "",
        uid: request?.uid ?? "",
        signal: controller,
        ...(q.timeoutMs > 0 ? { timeoutMs: q.timeoutMs } : {}),
      }),
    ).then(
      (answers) =>
        this.settle(id, controller, { $typeName: "clipper.v1.StreamedAnswer", callId: id, results: answers.results, errorCode: 0, errorMessage: "" }),
      (err: unknown) => this.settle(id, controller, this.failureOf(id, err)),
    );
  }

  private settle(id: bigint, controller: Cancellation, answer: StreamedAnswer): void {
    // A cancelled call gets no answer: its caller has gone.
    if (controller.aborted) return;
    this.open.delete(id);
    this.outgoing.push(answer);
    this.endIfDone();
  }

  private failureOf(id: bigint, err: unknown): StreamedAnswer {
    if (err instanceof ConnectError) return failure(id, err.code, err.rawMessage);
    this.options.logger?.error({ err }, "unexpected error answering a streamed query");
    return failure(id, Code.Internal, "internal error in Query");
  }
}

function failure(callId: bigint, code: Code, message: string): StreamedAnswer {
  return { $typeName: "clipper.v1.StreamedAnswer", callId, results: [], errorCode: code, errorMessage: message };
}
