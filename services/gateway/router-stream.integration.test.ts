import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { QueryService, type QueryStreamRequest } from "../../gen/clipper/v1/query_service_pb.js";
import { type QueryOptions, QueryStreamSession } from "../router/index.js";
import { Code, ConnectError, createGrpcTransport, type GrpcTransport, type RunningGrpcServer, registration, startGrpcServer } from "../shared/index.js";
import { RouterStream } from "./router-stream.js";

const inputs = create(InputsSchema, { type: InputType.DOUBLES, lengths: [1], doubles: [1] });
const query = (application: string) => ({ application, inputs, version: "", uid: "" });

/** A router whose QueryStream answers through `answer`, counting the request messages it reads. */
async function fakeRouter(answer: (app: string, options: QueryOptions) => Promise<string>, port = 0) {
  const received: QueryStreamRequest[] = [];
  const server = await startGrpcServer({
    port,
    services: [
      registration(QueryService, {
        queryStream(requests, ctx) {
          async function* counted() {
            for await (const r of requests) {
              received.push(r);
              yield r;
            }
          }
          const session = new QueryStreamSession(
            async (app, _inputs, options) => ({
              results: [
                {
                  $typeName: "clipper.v1.QueryResult",
                  queryId: 1n,
                  output: await answer(app, options),
                  default: false,
                  defaultExplanation: "",
                  models: [],
                  confidence: 1,
                },
              ],
              outcomes: ["predicted"],
            }),
            { maxOpenCalls: 1000 },
            ctx.signal,
          );
          return session.run(counted());
        },
      }),
    ],
  });
  return { server, received };
}

describe("RouterStream (real gRPC over loopback)", () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  function connect(server: RunningGrpcServer, options?: ConstructorParameters<typeof RouterStream>[1]): RouterStream {
    const transport: GrpcTransport = createGrpcTransport({ address: server.address });
    const stream = new RouterStream(createClient(QueryService, transport), options);
    cleanup.push(() => {
      stream.close();
      transport.close();
    });
    return stream;
  }

  it("sends queries issued together in one message and gives each caller its own answer", async () => {
    const { server, received } = await fakeRouter(async (app) => `out-${app}`);
    cleanup.push(() => server.close(0));
    const stream = connect(server);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stream.query(query(`app${i}`), 5000, undefined)));
    expect(results.map((r) => r[0]?.output)).toEqual(Array.from({ length: 50 }, (_, i) => `out-app${i}`));
    expect(received.length).toBe(1);
    expect(received[0]?.queries.length).toBe(50);
    expect(received[0]?.queries[0]?.timeoutMs).toBe(5000);
    expect(stream.openCalls).toBe(0);
  });

  it("carries the router's error codes, and a caller's cancellation reaches the router", async () => {
    const aborted: boolean[] = [];
    const { server } = await fakeRouter((app, options) => {
      if (app === "missing") return Promise.reject(new ConnectError('application "missing" not found', Code.NotFound));
      return new Promise((_, reject) =>
        options.signal?.addEventListener("abort", () => {
          aborted.push(true);
          reject(new Error("cancelled"));
        }),
      );
    });
    cleanup.push(() => server.close(0));
    const stream = connect(server);
    const missing = (await stream.query(query("missing"), 5000, undefined).catch((e: unknown) => e)) as ConnectError;
    expect([missing.code, missing.rawMessage]).toEqual([Code.NotFound, 'application "missing" not found']);
    const caller = new AbortController();
    const waiting = stream.query(query("slow"), 5000, caller.signal).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    caller.abort();
    expect(((await waiting) as ConnectError).code).toBe(Code.Canceled);
    await expect.poll(() => aborted.length).toBe(1);
  });

  it("fails open calls with UNAVAILABLE when the router goes away, and opens a new stream when it is back", async () => {
    const { server } = await fakeRouter((app) => (app === "hang" ? new Promise(() => {}) : Promise.resolve("ok")));
    const stream = connect(server);
    const hanging = stream.query(query("hang"), 60_000, undefined).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await server.close(0);
    expect(((await hanging) as ConnectError).code).toBe(Code.Unavailable);
    const again = await fakeRouter(async () => "back", server.port);
    cleanup.push(() => again.server.close(0));
    await expect
      .poll(async () => (await stream.query(query("x"), 2000, undefined).catch(() => undefined))?.[0]?.output, { timeout: 15_000, interval: 200 })
      .toBe("back");
  });

  it("falls back to unary Query calls, open calls included, when the router does not serve QueryStream", async () => {
    const server = await startGrpcServer({
      port: 0,
      services: [registration(QueryService, { query: async (req) => ({ results: [{ queryId: 1n, output: `unary-${req.application}` }] }) })],
    });
    cleanup.push(() => server.close(0));
    let told = 0;
    const transport = createGrpcTransport({ address: server.address });
    const stream = new RouterStream(createClient(QueryService, transport), { onUnsupported: () => told++ });
    cleanup.push(() => {
      stream.close();
      transport.close();
    });
    const first = await Promise.all([stream.query(query("a"), 5000, undefined), stream.query(query("b"), 5000, undefined)]);
    expect(first.map((r) => r[0]?.output)).toEqual(["unary-a", "unary-b"]);
    expect((await stream.query(query("c"), 5000, undefined))[0]?.output).toBe("unary-c");
    expect(told).toBe(1);
  });

  it("gives up on a call the router leaves unanswered past its deadline, with DEADLINE_EXCEEDED", async () => {
    const { server } = await fakeRouter(() => new Promise(() => {}));
    cleanup.push(() => server.close(0));
    const stream = connect(server, { graceMs: 50, sweepIntervalMs: 20 });
    const err = (await stream.query(query("app"), 30, undefined).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(stream.openCalls).toBe(0);
  });
});
