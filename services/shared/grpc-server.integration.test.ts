import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { QueryService, QueryStreamRequestSchema } from "../../gen/clipper/v1/query_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { CancelSignal } from "./cancellation.js";
import { Code, ConnectError, invalidArgument } from "./errors.js";
import { deserializer, grpcPath, serializer } from "./grpc-codec.js";
import { cancelSignalOf, type RunningGrpcServer, registration, startGrpcServer } from "./grpc-server.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";

describe("grpc-js server and transport for connect-es services", () => {
  let server: RunningGrpcServer;
  let transport: GrpcTransport;
  beforeAll(async () => {
    server = await startGrpcServer({
      port: 0,
      reflection: true,
      services: [
        registration(ModelService, {
          predict(req) {
            if (req.inputs?.type !== InputType.DOUBLES) throw invalidArgument("inputs.type must be doubles");
            return { outputs: req.inputs.lengths.map((n) => ({ result: { case: "value", value: String(n) } })) };
          },
          getMetadata(_req, ctx) {
            return { modelName: ctx.requestHeader.get("x-model") ?? "none", runtime: String(ctx.timeoutMs() !== undefined) };
          },
        }),
      ],
    });
    transport = createGrpcTransport({ address: server.address });
  });
  afterAll(async () => {
    transport.close();
    await server.close();
  });

  it("answers unary calls with the handler's message", async () => {
    const client = createClient(ModelService, transport);
    const res = await client.predict({ inputs: { type: InputType.DOUBLES, lengths: [2, 1], doubles: [1, 2, 3] } });
    expect(res.outputs.map((o) => o.result.value)).toEqual(["2", "1"]);
  });

  it("passes headers and deadlines to the handler", async () => {
    const client = createClient(ModelService, transport);
    const res = await client.getMetadata({}, { headers: { "x-model": "m1" }, timeoutMs: 1000 });
    expect(res.modelName).toBe("m1");
    expect(res.runtime).toBe("true");
  });

  it("carries a ConnectError's code and message to the client", async () => {
    const client = createClient(ModelService, transport);
    const err = await client.predict({ inputs: { type: InputType.INTS } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toBe("inputs.type must be doubles");
  });

  it("answers Unimplemented for a method without a handler", async () => {
    const client = createClient(ModelService, transport);
    const err = (await client.checkReadiness({}).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.Unimplemented);
  });

  it("serves grpc.health.v1 Check and Watch", async () => {
    const health = createClient(Health, transport);
    expect((await health.check({ service: "clipper.model.v1.ModelService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const err = (await health.check({ service: "nope" }).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.NotFound);
    const abort = new AbortController();
    const seen: number[] = [];
    const watching = (async () => {
      for await (const r of health.watch({ service: "" }, { signal: abort.signal })) {
        seen.push(r.status);
        if (seen.length === 1) server.health.set("", "NOT_SERVING");
        if (seen.length === 2) abort.abort();
      }
    })().catch(() => undefined);
    await watching;
    expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
    server.health.set("", "SERVING");
  });
});

describe("bidirectional streams", () => {
  it("still sends the answers to the last requests after the client has half-closed", async () => {
    // The handler answers each request 20 ms after reading it, so most answers leave after the requests ended.
    const server = await startGrpcServer({
      port: 0,
      services: [
        registration(QueryService, {
          async *queryStream(requests) {
            const seen: bigint[] = [];
            for await (const r of requests) seen.push(...r.queries.map((q) => q.callId));
            for (const callId of seen) {
              await new Promise((resolve) => setTimeout(resolve, 20));
              yield { answers: [{ callId, results: [{ output: String(callId) }] }] };
            }
          },
        }),
      ],
    });
    const transport = createGrpcTransport({ address: server.address });
    try {
      async function* requests() {
        for (const callId of [1n, 2n, 3n]) yield create(QueryStreamRequestSchema, { queries: [{ callId }] });
      }
      const answers: string[] = [];
      for await (const res of createClient(QueryService, transport).queryStream(requests(), { timeoutMs: 5000 })) {
        answers.push(...res.answers.map((a) => a.results[0]?.output ?? ""));
      }
      expect(answers).toEqual(["1", "2", "3"]);
    } finally {
      transport.close();
      await server.close(0);
    }
  });
});

describe("a unary call's context", () => {
  /** What the handler saw of its call: the query path's cancel signal, the AbortSignal, when each fired. */
  interface Seen {
    cancel: CancelSignal;
    signal: AbortSignal | undefined;
    cancelledAt: number | undefined;
  }
  let server: RunningGrpcServer;
  let transport: GrpcTransport;
  const seen: Seen[] = [];
  beforeAll(async () => {
    server = await startGrpcServer({
      port: 0,
      services: [
        registration(ModelService, {
          // Never answers: waits for its call to be cancelled (by the client or the deadline).
          async predict(_req, ctx) {
            const entry: Seen = { cancel: cancelSignalOf(ctx), signal: ctx.signal, cancelledAt: undefined };
            seen.push(entry);
            await new Promise<void>((resolve) => entry.cancel.addEventListener("abort", () => resolve()));
            entry.cancelledAt = Date.now();
            return { outputs: [] };
          },
          // Answers at once, with a trailer; takes no signal.
          getMetadata(_req, ctx) {
            seen.push({ cancel: cancelSignalOf(ctx), signal: undefined, cancelledAt: undefined });
            ctx.responseTrailer.set("x-answered-by", "test");
            return { modelName: "m" };
          },
        }),
      ],
    });
    transport = createGrpcTransport({ address: server.address });
  });
  afterAll(async () => {
    transport.close();
    await server.close(0);
  });

  it("is cancelled, both signals, when the client cancels the call", async () => {
    seen.length = 0;
    const abort = new AbortController();
    const call = createClient(ModelService, transport)
      .predict({}, { signal: abort.signal })
      .catch((e: unknown) => e);
    await waitUntil(() => seen.length === 1);
    expect(seen[0]?.cancel.aborted).toBe(false);
    abort.abort();
    expect(((await call) as ConnectError).code).toBe(Code.Canceled);
    await waitUntil(() => seen[0]?.cancelledAt !== undefined);
    expect(seen[0]?.signal?.aborted).toBe(true);
    expect(ConnectError.from(seen[0]?.signal?.reason).code).toBe(Code.Canceled);
  });

  it("is cancelled when the deadline passes", async () => {
    seen.length = 0;
    const started = Date.now();
    const err = await createClient(ModelService, transport)
      .predict({}, { timeoutMs: 200 })
      .catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    await waitUntil(() => seen[0]?.cancelledAt !== undefined);
    expect((seen[0]?.cancelledAt ?? 0) - started).toBeGreaterThanOrEqual(150);
    expect(seen[0]?.signal?.aborted).toBe(true);
  });

  it("sends the trailers the handler set, and is not cancelled by the call's normal end", async () => {
    seen.length = 0;
    // A plain grpc-js client: the connect transport of ours does not surface trailers.
    const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    const method = ModelService.method.getMetadata;
    const trailer = await new Promise<grpc.Metadata>((resolve, reject) => {
      const call = client.makeUnaryRequest(grpcPath(method), serializer(method.input), deserializer(method.output), {}, (err) => err && reject(err));
      call.on("status", (status: grpc.StatusObject) => resolve(status.metadata));
    });
    client.close();
    expect(trailer.get("x-answered-by")).toEqual(["test"]);
    // grpc-js reports every closed stream as "cancelled", answered or not: the answered call must not look cancelled.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen[0]?.cancel.aborted).toBe(false);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
