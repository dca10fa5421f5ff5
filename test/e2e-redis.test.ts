import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { startRedisServer, type TestRedisServer } from "../services/registry/testing/redis-server.js";
import { postJson, repoRoot, TestSystem, waitFor } from "./system.js";

describe("end to end on the Redis store", () => {
  let redis: TestRedisServer;
  let system: TestSystem;

  beforeAll(async () => {
    redis = await startRedisServer();
    system = await new TestSystem({ store: "redis", redisUrl: redis.url }).start();
    const mgmt = system.management();
    await mgmt.createApplication({ name: "hello-world", inputType: InputType.DOUBLES, defaultOutput: "-1.0", sloMicros: 2_000_000n });
    const model = {
      name: "sum-model",
      version: "1",
      inputType: InputType.DOUBLES,
      desiredReplicas: 1,
      runtime: {
        kind: {
          case: "nodeModule" as const,
          value: { modulePath: join(repoRoot, "sdk", "typescript", "examples", "sum-model.ts") },
        },
      },
    };
    for await (const _ of system.containerManager().deployModel({ model, setCurrent: true, timeoutSeconds: 60 })) {
      // until READY
    }
    await mgmt.linkModel({ application: "hello-world", modelName: "sum-model" });
  }, 120_000);

  afterAll(async () => {
    await system?.stop();
    await redis?.stop();
  }, 60_000);

  const predict = async () => {
    const r = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [1.1, 2.2, 3.3] });
    return r.json["default"] === false ? r.json : undefined;
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
