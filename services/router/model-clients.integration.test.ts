import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { type Inputs, InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService, type PredictStreamRequest } from "../../gen/clipper/model/v1/model_service_pb.js";
import { ConfigSnapshotSchema, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, createGrpcTransport, type GrpcTransport, type RunningGrpcServer, registration, startGrpcServer, viewFromSnapshot } from "../shared/index.js";
import { rejection } from "../shared/testing/rejection.js";
import { ReplicaClientPool, ReplicaStreamClient, replicaEndpoints } from "./model-clients.js";

describe("ReplicaClientPool", () => {
  it("keeps one transport per endpoint and closes those that leave the configuration", () => {
    const opened: string[] = [];
    const closed: string[] = [];
    const pool = new ReplicaClientPool({
      connect: (address) => {
        opened.push(address);
        return { address, close: () => closed.push(address) } as unknown as GrpcTransport;
      },
    });
    pool.clientFor("a:1");
    pool.clientFor("a:1");
    pool.clientFor("b:1");
    expect(opened).toEqual(["a:1", "b:1"]);
    pool.retain(new Set(["b:1"]));
    expect(closed).toEqual(["a:1"]);
    expect(pool.endpoints()).toEqual(["b:1"]);
    pool.close();
    expect(closed).toEqual(["a:1", "b:1"]);
  });

  it("lists every endpoint named by the replica sets", () => {
    const view = viewFromSnapshot(
      create(ConfigSnapshotSchema, {
        replicaSets: [
          {
            modelName: "m",
            modelVersion: "1",
            replicas: [
              { endpoint: "a:1", state: ReplicaState.READY },
              { endpoint: "a:2", state: ReplicaState.FAILED },
            ],
          },
          { modelName: "n", modelVersion: "1", replicas: [{ endpoint: "", state: ReplicaState.STARTING }] },
        ],
      }),
    );
    expect([...replicaEndpoints(view)]).toEqual(["a:1", "a:2"]);
  });
});

/** Inputs whose first value says what the test replica does: < 0 never answers, otherwise answers its sum. */
const batch = (...values: number[]): Inputs => create(InputsSchema, { type: InputType.DOUBLES, doubles: values, lengths: [values.length] });

describe("ReplicaStreamClient", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  /** A replica over real gRPC that counts its calls; `stream: false` serves Predict alone, as a container without PredictStream. */
  async function replica(stream = true) {
    const calls = { predict: 0, predictStream: 0, batches: [] as bigint[] };
    const sum = (inputs: Inputs | undefined) => [{ result: { case: "value" as const, value: String((inputs?.doubles ?? []).reduce((a, b) => a + b, 0)) } }];
    const never = new Promise<never>(() => {});
    const server: RunningGrpcServer = await startGrpcServer({
      services: [
        registration(ModelService, {
          async predict(req) {
            calls.predict++;
            if ((req.inputs?.doubles[0] ?? 0) < 0) await never;
            return { outputs: sum(req.inputs) };
          },
          ...(stream
            ? {
                async *predictStream(requests: AsyncIterable<PredictStreamRequest>) {
                  calls.predictStream++;
                  for await (const req of requests) {
                    calls.batches.push(req.batchId);
                    if ((req.inputs?.doubles[0] ?? 0) >= 0) yield { batchId: req.batchId, outputs: sum(req.inputs) };
                  }
                },
              }
            : {}),
        }),
      ],
      port: 0,
    });
    cleanup.push(() => server.close(0));
    const transport = createGrpcTransport({ address: server.address });
    const client = new ReplicaStreamClient(createClient(ModelService, transport));
    cleanup.push(
      () => transport.close(),
      () => client.close(),
    );
    return { server, client, calls };
  }
  const options = (timeoutMs = 5000, signal = new AbortController().signal) => ({ signal, timeoutMs });

  it("carries every batch on one stream and answers each its own outputs", async () => {
    const { client, calls } = await replica();
    const answers = await Promise.all([
      client.predict(batch(1, 2), 1n, options()),
      client.predict(batch(10), 2n, options()),
      client.predict(batch(4, 4, 4), 3n, options()),
    ]);
    expect(answers.map((outputs) => outputs.map((o) => o.result.value))).toEqual([["3"], ["10"], ["12"]]);
    expect(await client.predict(batch(5), 4n, options())).toMatchObject([{ result: { value: "5" } }]);
    expect(calls).toEqual({ predict: 0, predictStream: 1, batches: [1n, 2n, 3n, 4n] });
  });

  it("fails a batch at its deadline or when cancelled, and the stream serves the next one", async () => {
    const { client, calls } = await replica();
    expect((await rejection(client.predict(batch(-1), 1n, options(50)))).code).toBe(Code.DeadlineExceeded);
    const cancel = new AbortController();
    const cancelled = client.predict(batch(-1), 2n, options(5000, cancel.signal));
    cancel.abort();
    expect((await rejection(cancelled)).code).toBe(Code.Canceled);
    expect(await client.predict(batch(7), 3n, options())).toMatchObject([{ result: { value: "7" } }]);
    expect(calls.predictStream).toBe(1);
  });

  it("fails open batches with UNAVAILABLE when the replica goes away", async () => {
    const { server, client } = await replica();
    const open = client.predict(batch(-1), 1n, options());
    await new Promise((resolve) => setTimeout(resolve, 50));
    await server.close(0);
    expect((await rejection(open)).code).toBe(Code.Unavailable);
  });

  it("falls back to unary Predict, open batches included, for a container without PredictStream", async () => {
    const { client, calls } = await replica(false);
    const [first, second] = await Promise.all([client.predict(batch(1), 1n, options()), client.predict(batch(2), 2n, options())]);
    expect([first?.[0]?.result.value, second?.[0]?.result.value]).toEqual(["1", "2"]);
    expect(await client.predict(batch(3), 3n, options())).toMatchObject([{ result: { value: "3" } }]);
    expect(calls.predict).toBe(3);
  });
});
