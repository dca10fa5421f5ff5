import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, createGrpcTransport, createLogger, type GrpcTransport, prom, type RunningGrpcServer, registration, startGrpcServer } from "../shared/index.js";
import { startSnapshotRegistry } from "../shared/testing/snapshot-registry.js";
import { type RunningRouter, startRouter } from "./router.js";

const logger = createLogger({ service: "test", level: "silent" });

/** A model replica that echoes each string input after `delayMs` per batch, recording the batch sizes it saw. */
async function startEchoModel(delayMs: number): Promise<RunningGrpcServer & { batches: number[] }> {
  const batches: number[] = [];
  const server = await startGrpcServer({
    port: 0,
    services: [
      registration(ModelService, {
        async predict(req) {
          const strings = req.inputs?.strings ?? [];
          batches.push(strings.length);
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          return { outputs: strings.map((s) => ({ result: { case: "value" as const, value: `echo:${s}` } })) };
        },
      }),
    ],
  });
  return Object.assign(server, { batches });
}

describe("router over real gRPC: batching, replica balance, cache, overload", () => {
  let fast: Awaited<ReturnType<typeof startEchoModel>>;
  let slow: Awaited<ReturnType<typeof startEchoModel>>;
  let cached: Awaited<ReturnType<typeof startEchoModel>>;
  let busy: Awaited<ReturnType<typeof startEchoModel>>;
  let registry: RunningGrpcServer;
  let router: RunningRouter;
  let transport: GrpcTransport;
  let client: ReturnType<typeof createClient<typeof QueryService>>;

  beforeAll(async () => {
    [fast, slow, cached, busy] = await Promise.all([startEchoModel(2), startEchoModel(60), startEchoModel(300), startEchoModel(500)]);
    const model = (name: string, batching: Record<string, unknown> = {}) => ({ name, version: "1", inputType: InputType.STRINGS, batching });
    const replicas = (name: string, ...servers: RunningGrpcServer[]) => ({
      modelName: name,
      modelVersion: "1",
      replicas: servers.map((s, i) => ({ id: `${name}-${i}`, modelName: name, modelVersion: "1", endpoint: s.address, state: ReplicaState.READY })),
    });
    const app = (name: string, linked: string, extra: Record<string, unknown> = {}) => ({
      name,
      inputType: InputType.STRINGS,
      defaultOutput: "default",
      sloMicros: 10_000_000n,
      linkedModels: [linked],
      ...extra,
    });
    registry = await startSnapshotRegistry({
      revision: 1n,
      applications: [app("echo", "pair"), app("cached", "cached-model", { cacheEnabled: true }), app("busy", "busy-model")],
      models: [model("pair"), model("cached-model"), model("busy-model", { maxInFlightPerReplica: 1, maxQueueLength: 1 })],
      currentVersions: ["pair", "cached-model", "busy-model"].map((modelName) => ({ modelName, version: "1" })),
      replicaSets: [replicas("pair", fast, slow), replicas("cached-model", cached), replicas("busy-model", busy)],
    });
    router = await startRouter({
      host: "127.0.0.1",
      port: 0,
      registry: registry.address,
      limits: { maxBatch: 1000, maxInputSize: 1000 },
      maxWaitMs: 10_000,
      logger,
      metrics: new prom.Registry(),
    });
    transport = createGrpcTransport({ address: router.address });
    client = createClient(QueryService, transport);
    for (let i = 0; i < 100; i++) {
      const [r] = (await client.query({ application: "echo", inputs: { type: InputType.STRINGS, strings: ["ping"] } })).results;
      if (r !== undefined && !r.default) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("the router never answered");
  });

  afterAll(async () => {
    transport?.close();
    await router?.close();
    await Promise.all([registry, fast, slow, cached, busy].map((s) => s?.close()));
  });

  it("forms batches from concurrent callers, answers each its own output, and gives the slow replica less work", async () => {
    fast.batches.length = 0;
    slow.batches.length = 0;
    for (let round = 0; round < 4; round++) {
      const ids = Array.from({ length: 64 }, (_, i) => `r${round}-q${i}`);
      const answers = await Promise.all(ids.map((id) => client.query({ application: "echo", inputs: { type: InputType.STRINGS, strings: [id] } })));
      for (const [i, a] of answers.entries()) expect(a.results.map((r) => [r.output, r.default])).toEqual([[`echo:${ids[i]}`, false]]);
    }
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect(sum(fast.batches) + sum(slow.batches)).toBe(256);
    expect(Math.max(...fast.batches, ...slow.batches)).toBeGreaterThan(1);
    expect(sum(fast.batches)).toBeGreaterThan(sum(slow.batches));
  });

  it("answers concurrent identical queries with one model call when the application caches", async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => client.query({ application: "cached", inputs: { type: InputType.STRINGS, strings: ["same"] } })),
    );
    expect(answers.map((a) => a.results[0]?.output)).toEqual(Array(20).fill("echo:same"));
    expect(cached.batches).toEqual([1]);
    const again = await client.query({ application: "cached", inputs: { type: InputType.STRINGS, strings: ["same"] } });
    expect(again.results[0]?.output).toBe("echo:same");
    expect(cached.batches).toEqual([1]);
  });

  it("refuses with RESOURCE_EXHAUSTED once the model's queue is full", async () => {
    const calls = Array.from({ length: 5 }, (_, i) =>
      client.query({ application: "busy", inputs: { type: InputType.STRINGS, strings: [`b${i}`] } }).then(
        () => "ok",
        (err: { code?: Code; rawMessage?: string }) => (err.code === Code.ResourceExhausted ? "refused" : `error ${err.rawMessage}`),
      ),
    );
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(2);
    expect(outcomes.filter((o) => o === "refused")).toHaveLength(3);
  });
});
