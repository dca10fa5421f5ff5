import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedisServer, type TestRedisServer } from "../services/registry/testing/redis-server.js";
import { postJson, TestSystem, typescriptSumModel, waitFor } from "./system.js";

describe("end to end on the Redis store", () => {
  let redis: TestRedisServer;
  let system: TestSystem;

  beforeAll(async () => {
    redis = await startRedisServer();
    system = await new TestSystem({ store: "redis", redisUrl: redis.url }).start();
    await system.deployApp("hello-world", typescriptSumModel(), { defaultOutput: "-1.0", sloMicros: 2_000_000n });
  }, 120_000);

  afterAll(async () => {
    await system?.stop();
    await redis?.stop();
  }, 60_000);

  const predict = async () => {
    const r = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [1.1, 2.2, 3.3] });
    return r.json.default === false ? r.json : undefined;
  };

  it("serves predictions from a Node model", async () => {
    expect(await waitFor("a model answer", predict)).toMatchObject({ output: 6.6 });
  });

  it("keeps its configuration across a registry restart and a Redis restart", async () => {
    const port = await system.stopService("registry");
    await redis.restart();
    await system.startService("registry", port);
    const app = await waitFor("the registry back", () => system.management().getApplication({ name: "hello-world" }));
    expect(app.application?.linkedModels).toEqual(["sum-model"]);
    const models = await system.management().listModels({});
    expect(models.currentVersions).toEqual([expect.objectContaining({ modelName: "sum-model", version: "1" })]);
    expect(await waitFor("a model answer after the restarts", predict)).toMatchObject({ output: 6.6 });
  }, 60_000);
});
