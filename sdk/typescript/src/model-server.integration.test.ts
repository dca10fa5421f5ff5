import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sumModel from "../examples/sum-model.js";
import { InputType } from "./gen/clipper/common/v1/data_pb.js";
import { ModelService, type PredictResponse } from "./gen/clipper/model/v1/model_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import type { ModelInput } from "./model.js";
import { type RunningModelServer, serveModel } from "./model-server.js";

// The client is a stock one (connect-node speaking gRPC over h2c), not the SDK's own code.
interface Served {
  server: RunningModelServer;
  sessions: Http2SessionManager;
  transport: ReturnType<typeof createGrpcTransport>;
  client: ReturnType<typeof createClient<typeof ModelService>>;
}

const started: Served[] = [];

async function serve(model: Parameters<typeof serveModel>[0], inputType: InputType): Promise<Served> {
  const server = await serveModel(model, { name: "m", version: "v1", inputType, port: 0 });
  const baseUrl = `http://${server.address}`;
  const sessions = new Http2SessionManager(baseUrl);
  const transport = createGrpcTransport({ baseUrl, sessionManager: sessions });
  const served = { server, sessions, transport, client: createClient(ModelService, transport) };
  started.push(served);
  return served;
}

const values = (res: PredictResponse) => res.outputs.map((o) => `${o.result.case}:${o.result.value}`);

describe("serveModel", () => {
  let sum: Served;
  beforeAll(async () => {
    sum = await serve(sumModel, InputType.DOUBLES);
  });
  afterAll(async () => {
    for (const s of started) {
      s.sessions.abort();
      await s.server.close();
    }
  });

  it("answers a packed batch with one correctly rounded sum per input", async () => {
    const res = await sum.client.predict({ inputs: { type: InputType.DOUBLES, lengths: [3, 1, 2], doubles: [1.1, 2.2, 3.3, 5, 0.1, 0.2] } });
    expect(values(res)).toEqual(["value:6.6", "value:5", "value:0.30000000000000004"]);
  });

  it("answers batches on a PredictStream by batch id, in the order they finish, and goes on after a batch with bad inputs", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = await serve(async (inputs: ModelInput[]) => {
      if ((inputs[0] as number[])[0] === 0) await gate;
      return inputs.map((x) => String((x as number[])[0]));
    }, InputType.DOUBLES);
    async function* requests() {
      yield { batchId: 1n, inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [0] } };
      yield { batchId: 2n, inputs: { type: InputType.STRINGS, strings: ["wrong type"] } };
      yield { batchId: 3n, inputs: { type: InputType.DOUBLES, lengths: [1, 1], doubles: [5, 6] } };
    }
    const answers: Array<[bigint, string]> = [];
    for await (const answer of slow.client.predictStream(requests())) {
      answers.push([
        answer.batchId,
        answer.errorCode === 0 ? answer.outputs.map((o) => o.result.value).join(",") : `error ${answer.errorCode}: ${answer.errorMessage}`,
      ]);
      // Batch 1 is held until the others are answered: the stream does not run batches one after another.
      if (answers.length === 2) release();
    }
    expect(answers[0]?.[0]).toBe(2n);
    expect(answers[0]?.[1]).toMatch(new RegExp(`^error ${Code.InvalidArgument}: inputs.type is strings`));
    expect(answers.slice(1)).toEqual([
      [3n, "5,6"],
      [1n, "0"],
    ]);
  });

  it("refuses a batch past 1,024 open on one PredictStream with RESOURCE_EXHAUSTED, and answers the rest", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = await serve(async (inputs: ModelInput[]) => {
      await gate;
      return inputs.map(() => "ok");
    }, InputType.DOUBLES);
    async function* requests() {
      for (let i = 1; i <= 1025; i++) yield { batchId: BigInt(i), inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [i] } };
    }
    const codes = new Map<bigint, number>();
    for await (const answer of held.client.predictStream(requests())) {
      codes.set(answer.batchId, answer.errorCode);
      if (answer.batchId === 1025n) release();
    }
    expect(codes.size).toBe(1025);
    expect(codes.get(1025n)).toBe(Code.ResourceExhausted);
    expect([...codes.values()].filter((c) => c === 0)).toHaveLength(1024);
  });

  it("unpacks each input type for the model", async () => {
    const seen: ModelInput[][] = [];
    const echo = (inputs: ModelInput[]) => {
      seen.push(inputs);
      return inputs.map((i) => JSON.stringify(i instanceof Uint8Array ? [...i] : i));
    };
    const ints = await serve(echo, InputType.INTS);
    expect(values(await ints.client.predict({ inputs: { type: InputType.INTS, lengths: [2, 1], ints: [1, -2, 3] } }))).toEqual(["value:[1,-2]", "value:[3]"]);
    const bytes = await serve(echo, InputType.BYTES);
    await bytes.client.predict({ inputs: { type: InputType.BYTES, bytes: [new Uint8Array([1, 2]), new Uint8Array([255])] } });
    expect(seen[1]?.[0]).toBeInstanceOf(Uint8Array);
    const strings = await serve({ predict: echo }, InputType.STRINGS);
    expect(values(await strings.client.predict({ inputs: { type: InputType.STRINGS, strings: ["a", "é"] } }))).toEqual(['value:"a"', 'value:"é"']);
  });

  it("turns a wrong number of outputs into per-input errors", async () => {
    const short = await serve(() => ["only one"], InputType.STRINGS);
    const res = await short.client.predict({ inputs: { type: InputType.STRINGS, strings: ["a", "b"] } });
    expect(values(res)).toEqual(["error:predict returned 1 outputs for 2 inputs", "error:predict returned 1 outputs for 2 inputs"]);
  });

  it("turns non-string outputs into errors for those inputs only", async () => {
    const mixed = await serve(() => ["ok", 42 as unknown as string, null as unknown as string], InputType.STRINGS);
    const res = await mixed.client.predict({ inputs: { type: InputType.STRINGS, strings: ["a", "b", "c"] } });
    expect(values(res)).toEqual(["value:ok", "error:predict output 1 is a number, not a string", "error:predict output 2 is null, not a string"]);
  });

  it("turns an exception (sync or async) into per-input errors and keeps serving", async () => {
    const throwing = await serve(() => {
      throw new Error("boom");
    }, InputType.STRINGS);
    const res = await throwing.client.predict({ inputs: { type: InputType.STRINGS, strings: ["a", "b"] } });
    expect(values(res)).toEqual(["error:predict failed: boom", "error:predict failed: boom"]);
    const rejecting = await serve(async () => Promise.reject(new Error("later")), InputType.STRINGS);
    expect(values(await rejecting.client.predict({ inputs: { type: InputType.STRINGS, strings: ["a"] } }))).toEqual(["error:predict failed: later"]);
    expect(values(await sum.client.predict({ inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [1] } }))).toEqual(["value:1"]);
  });

  it("rejects inputs of the wrong type with InvalidArgument naming the problem", async () => {
    const err = (await sum.client.predict({ inputs: { type: InputType.INTS, lengths: [1], ints: [1] } }).catch((e: unknown) => e)) as ConnectError;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("inputs.type is ints");
    const missing = (await sum.client.predict({}).catch((e: unknown) => e)) as ConnectError;
    expect(missing.code).toBe(Code.InvalidArgument);
  });

  it("serves metadata, readiness and grpc health", async () => {
    const meta = await sum.client.getMetadata({});
    expect(meta.modelName).toBe("m");
    expect(meta.modelVersion).toBe("v1");
    expect(meta.inputType).toBe(InputType.DOUBLES);
    expect(meta.runtime).toMatch(/^node /);
    expect((await sum.client.checkReadiness({})).ready).toBe(true);
    const health = createClient(Health, sum.transport);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  describe("close()", () => {
    /** A server of its own (closed by the test, not by afterAll) whose model holds a batch whose first value is 0 until released. */
    async function heldServer() {
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      let running = 0;
      const served = await serve(async (inputs: ModelInput[]) => {
        running++;
        if ((inputs[0] as number[])[0] === 0) await gate;
        return inputs.map((x) => String((x as number[])[0]));
      }, InputType.DOUBLES);
      started.splice(started.indexOf(served), 1);
      return { ...served, release, running: () => running };
    }
    const until = async (what: string, ok: () => boolean) => {
      for (let waited = 0; !ok(); waited += 10) {
        if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    it("lets a stream's batch and a unary call in flight finish, answers a batch sent while draining UNAVAILABLE, and ends the stream OK", async () => {
      const held = await heldServer();
      let closing: () => void = () => {};
      const closeCalled = new Promise<void>((resolve) => (closing = resolve));
      async function* requests() {
        yield { batchId: 1n, inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [0] } };
        await closeCalled;
        yield { batchId: 2n, inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [7] } };
        // The caller closes its side once it has its answers, as the router does with a replica that is going.
        await allAnswered;
      }
      const answers: string[] = [];
      let answered: () => void = () => {};
      const allAnswered = new Promise<void>((resolve) => (answered = resolve));
      const streamDone = (async () => {
        for await (const a of held.client.predictStream(requests())) {
          if (answers.length === 1) answered();
          answers.push(
            a.errorCode === 0 ? `${a.batchId}:${a.outputs.map((o) => o.result.value).join(",")}` : `${a.batchId}:error ${a.errorCode}: ${a.errorMessage}`,
          );
        }
      })();
      const unary = held.client.predict({ inputs: { type: InputType.DOUBLES, lengths: [1, 1], doubles: [0, 3] } });
      await until("both batches in the model", () => held.running() === 2);
      const closed = held.server.close(10_000);
      closing();
      await until("the batch sent while draining to be refused", () => answers.length === 1);
      expect(answers).toEqual([`2:error ${Code.Unavailable}: the model server is stopping; send the batch to another replica`]);
      const health = createClient(Health, held.transport);
      expect(
        await health.check({ service: "" }).then(
          (r) => r.status,
          (e: unknown) => (e as ConnectError).code,
        ),
      ).not.toBe(HealthCheckResponse_ServingStatus.SERVING);
      held.release();
      expect(values(await unary)).toEqual(["value:0", "value:3"]);
      await streamDone;
      expect(answers).toEqual([`2:error ${Code.Unavailable}: the model server is stopping; send the batch to another replica`, "1:0"]);
      const startedAt = performance.now();
      await closed;
      expect(performance.now() - startedAt).toBeLessThan(2000);
      held.sessions.abort();
    });

    it("cuts what outlasts the drain timeout", async () => {
      const held = await heldServer();
      const stream = (async () => {
        async function* requests() {
          yield { batchId: 1n, inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [0] } };
          await new Promise(() => {});
        }
        for await (const _ of held.client.predictStream(requests())) {
          // never answered
        }
      })().catch((e: unknown) => e);
      await until("the batch in the model", () => held.running() === 1);
      const startedAt = performance.now();
      await held.server.close(300);
      const tookMs = performance.now() - startedAt;
      expect(tookMs).toBeGreaterThanOrEqual(290);
      expect(tookMs).toBeLessThan(3000);
      expect(await stream).toBeInstanceOf(ConnectError);
      held.release();
      held.sessions.abort();
    });
  });
});
