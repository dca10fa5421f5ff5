import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore } from "./redis-store.js";
import { startRedisServer, type TestRedisServer } from "./testing/redis-server.js";
import { describeStoreContract, sampleChanges } from "./testing/store-contract.js";

let redis: TestRedisServer;
let prefix = "contract-0:";
let next = 1;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

describeStoreContract("redis", {
  open: () => RedisStore.open({ url: redis.url, prefix }),
  reset: async () => {
    prefix = `contract-${next++}:`;
  },
});

describe("redis store durability", () => {
  it("keeps the configuration when redis-server restarts from its AOF", async () => {
    const opts = { url: redis.url, prefix: "restart:" };
    const first = await RedisStore.open(opts);
    await first.commit(0n, [sampleChanges.app("a"), sampleChanges.model("m", "1")]);
    await first.close();
    await redis.restart();
    const second = await RedisStore.open(opts);
    const snap = await second.load();
    await second.close();
    expect(snap.revision).toBe(2n);
    expect(snap.applications.map((a) => a.name)).toEqual(["a"]);
    expect(snap.models).toEqual([sampleChanges.model("m", "1").change.value]);
  });

  it("fails clearly when redis cannot be reached", async () => {
    await expect(RedisStore.open({ url: "redis://127.0.0.1:1", prefix: "x:" })).rejects.toThrow(/cannot reach redis at redis:\/\/127.0.0.1:1/);
  });
});
