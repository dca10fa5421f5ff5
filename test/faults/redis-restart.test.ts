// A Redis restart (append-only file on) loses no configuration: not what was
// written before it, nor what the registry acknowledges after reconnecting.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { findRedisServer, startRedisServer, type TestRedisServer } from "../../services/registry/testing/redis-server.js";
import { TestSystem, waitFor } from "../system.js";
import { faultyModel } from "./load.js";

// CI installs redis-server; elsewhere the test is skipped rather than failed.
describe.skipIf(findRedisServer() === undefined && !process.env.CI)("Redis restart", () => {
  let redis: TestRedisServer;
  let system: TestSystem;

  beforeAll(async () => {
    redis = await startRedisServer();
    system = new TestSystem({ store: "redis", redisUrl: redis.url });
    await system.startService("registry");
  }, 60_000);

  afterAll(async () => {
    await system?.stop();
    await redis?.stop();
  }, 60_000);

  it("keeps every acknowledged change across Redis and registry restarts", async () => {
    const mgmt = system.management();
    await mgmt.createApplication({ name: "before", inputType: InputType.DOUBLES, defaultOutput: "d1", sloMicros: 50_000n, cacheEnabled: true });
    await mgmt.createModel({ model: { ...faultyModel("m", "pid", 0), labels: { team: "a" } } });
    await mgmt.linkModel({ application: "before", modelName: "m" });
    await mgmt.updateApplication({ name: "before", defaultOutput: "d2", defaultOnOverload: true });

    await redis.restart();
    // The registry reconnects to Redis by itself; the first writes may fail while it does, never silently.
    await waitFor("a write acknowledged after the Redis restart", () =>
      mgmt.createApplication({ name: "after", inputType: InputType.STRINGS, defaultOutput: "x", sloMicros: 0n }),
    );
    await mgmt.updateModel({ name: "m", version: "1", desiredReplicas: 0, labels: { stage: "b" } });

    await redis.restart();
    const port = await system.stopService("registry");
    await system.startService("registry", port);
    const fresh = system.management();
    const before = (await fresh.getApplication({ name: "before" })).application;
    expect(before).toMatchObject({ defaultOutput: "d2", sloMicros: 50_000n, cacheEnabled: true, defaultOnOverload: true, linkedModels: ["m"] });
    expect((await fresh.getApplication({ name: "after" })).application?.inputType).toBe(InputType.STRINGS);
    const model = await fresh.getModel({ name: "m", version: "1" });
    expect(model.model?.labels).toEqual({ team: "a", stage: "b" });
    expect(model.currentVersion).toBe("1");
  }, 90_000);
});
