import { describe, expect, it } from "vitest";
import type { QueryStreamRequest, QueryStreamResponse, StreamedQuery } from "../../gen/clipper/v1/query_service_pb.js";
import { Code, ConnectError } from "../shared/index.js";
import type { Answers } from "./query-observer.js";
import type { QueryOptions } from "./query-processor.js";
import { type Answer, QueryStreamSession } from "./query-stream.js";

/** Requests pushed by the test, as the stream's input. */
class Requests implements AsyncIterable<QueryStreamRequest> {
  private readonly queue: QueryStreamRequest[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  send(queries: Array<Partial<StreamedQuery> & { callId: bigint }>, cancelled: bigint[] = []): void {
    this.queue.push({
      $typeName: "clipper.v1.QueryStreamRequest",
      queries: queries.map((q) => ({ $typeName: "clipper.v1.StreamedQuery", timeoutMs: 0, traceparent: "", tracestate: "", ...q })),
      cancelled,
    });
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<QueryStreamRequest> {
    for (;;) {
      const next = this.queue.shift();
      if (next) yield next;
      else if (this.ended) return;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

function answered(output: string): Answers {
  return {
    results: [{ $typeName: "clipper.v1.QueryResult", queryId: 1n, output, default: false, defaultExplanation: "", models: ["m:1"], confidence: 1 }],
    outcomes: ["predicted"],
  };
}

const query = (callId: bigint, application = "app"): Partial<StreamedQuery> & { callId: bigint } => ({
  callId,
  request: { $typeName: "clipper.v1.QueryRequest", application, version: "", uid: "" },
});

/** Collects the session's response messages until it ends. */
async function collect(session: QueryStreamSession, requests: Requests): Promise<QueryStreamResponse[]> {
  const out: QueryStreamResponse[] = [];
  for await (const message of session.run(requests)) out.push(message);
  return out;
}

describe("QueryStreamSession", () => {
  it("answers each call by its id, sends answers completing together in one message, and ends after the input once all are answered", async () => {
    const release: Array<() => void> = [];
    const answer: Answer = (application) => new Promise((resolve) => release.push(() => resolve(answered(`out-${application}`))));
    const session = new QueryStreamSession(answer, { maxOpenCalls: 100 }, new AbortController().signal);
    const requests = new Requests();
    const done = collect(session, requests);
    requests.send([query(1n, "a"), query(2n, "b"), query(3n, "c")]);
    requests.end();
    await new Promise((r) => setTimeout(r, 10));
    expect(session.openCalls).toBe(3);
    release[0]?.();
    release[2]?.();
    await new Promise((r) => setTimeout(r, 10));
    release[1]?.();
    const messages = await done;
    expect(messages.map((m) => m.answers.map((a) => [a.callId, a.results[0]?.output]))).toEqual([
      [
        [1n, "out-a"],
        [3n, "out-c"],
      ],
      [[2n, "out-b"]],
    ]);
  });

  it("passes the deadline, version and uid through, and a cancellation aborts the call and sends no answer", async () => {
    const seen: QueryOptions[] = [];
    const answer: Answer = (_app, _inputs, options) => {
      seen.push(options);
      return new Promise((_resolve, reject) => options.signal?.addEventListener("abort", () => reject(new ConnectError("cancelled", Code.Canceled))));
    };
    const session = new QueryStreamSession(answer, { maxOpenCalls: 100 }, new AbortController().signal);
    const requests = new Requests();
    const done = collect(session, requests);
    requests.send([{ ...query(7n), timeoutMs: 250, request: { $typeName: "clipper.v1.QueryRequest", application: "app", version: "2", uid: "u" } }]);
    await new Promise((r) => setTimeout(r, 10));
    expect(seen[0]).toMatchObject({ timeoutMs: 250, version: "2", uid: "u" });
    requests.send([], [7n]);
    requests.end();
    expect(await done).toEqual([]);
    expect(seen[0]?.signal?.aborted).toBe(true);
  });

  it("refuses a duplicate call id and calls past the limit, and keeps the codes of failures", async () => {
    const answer: Answer = (application) => {
      if (application === "missing") return Promise.reject(new ConnectError('application "missing" not found', Code.NotFound));
      if (application === "bug") return Promise.reject(new Error("boom"));
      return new Promise(() => {});
    };
    const stop = new AbortController();
    const session = new QueryStreamSession(answer, { maxOpenCalls: 2 }, stop.signal);
    const requests = new Requests();
    const messages: QueryStreamResponse[] = [];
    const done = (async () => {
      for await (const m of session.run(requests)) messages.push(m);
    })();
    requests.send([query(1n), query(1n), query(2n), query(3n), query(4n, "missing")]);
    await new Promise((r) => setTimeout(r, 10));
    requests.send([query(5n, "bug")]);
    await new Promise((r) => setTimeout(r, 10));
    const byId = new Map(messages.flatMap((m) => m.answers).map((a) => [a.callId, a]));
    expect(byId.get(1n)?.errorCode).toBe(Code.InvalidArgument);
    expect(byId.get(1n)?.errorMessage).toMatch(/call_id 1 is already open/);
    expect(byId.get(3n)?.errorCode).toBe(Code.ResourceExhausted);
    expect(byId.get(4n)?.errorCode).toBe(Code.ResourceExhausted);
    expect(byId.get(5n)?.errorCode).toBe(Code.ResourceExhausted);
    expect(byId.has(2n)).toBe(false);
    // The caller goes away: the stream ends at once, open calls are cancelled.
    stop.abort();
    await done;
    expect(session.openCalls).toBe(2);
  });

  it("answers NOT_FOUND with its message and hides unexpected errors behind INTERNAL", async () => {
    const answer: Answer = (application) =>
      application === "missing"
        ? Promise.reject(new ConnectError('application "missing" not found', Code.NotFound))
        : Promise.reject(new Error("secret detail"));
    const session = new QueryStreamSession(answer, { maxOpenCalls: 10 }, new AbortController().signal);
    const requests = new Requests();
    const done = collect(session, requests);
    requests.send([query(1n, "missing"), query(2n, "bug")]);
    requests.end();
    const answers = (await done).flatMap((m) => m.answers);
    expect(answers.map((a) => [a.callId, a.errorCode, a.errorMessage])).toEqual([
      [1n, Code.NotFound, 'application "missing" not found'],
      [2n, Code.Internal, "internal error in Query"],
    ]);
  });
});
