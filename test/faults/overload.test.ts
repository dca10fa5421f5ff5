import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pythonFileModel, repoRoot, TestSystem } from "../system.js";
import { type Outcome, restQuery } from "./load.js";

/** The model answers 50 inputs/s (20 ms each, batching or not). */
const CAPACITY_PER_S = 50;
const SLO_MS = 200;
/** What the machine adds on the way (HTTP, event loop, a loaded CI machine): no answer may come later than SLO + this. */
const MARGIN_MS = 250;
const BURST_S = 3;

describe("under a sustained burst of 10x what a slowed model can answer", () => {
  const system = new TestSystem({ routerInProcess: true });
  const url = () => `${system.gatewayUrl}/burst/predict`;

  beforeAll(async () => {
    await system.start();
    await system.deployApp("burst", pythonFileModel("per-item", join(repoRoot, "test", "fixtures", "per_item_model.py")), { sloMicros: BigInt(SLO_MS * 1000) });
    // The router learns the model's latency from a few batches of different sizes.
    for (let i = 0; i < 12; i++) await Promise.all(Array.from({ length: 1 + (i % 4) }, () => restQuery(url(), { input: [1, 2] })));
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("answers every query within the SLO (a model answer, the default or a 429) and keeps the model answering", async () => {
    const sent: Promise<Outcome>[] = [];
    const perTick = (10 * CAPACITY_PER_S) / 100;
    for (let tick = 0; tick < BURST_S * 100; tick++) {
      for (let i = 0; i < perTick; i++) sent.push(restQuery(url(), { input: [tick, i] }, 10_000));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const outcomes = await Promise.all(sent);
    const late = outcomes.filter((o) => o.ms > SLO_MS + MARGIN_MS);
    const answered = outcomes.filter((o) => o.status === 200 && !o.isDefault);
    const refused = outcomes.filter((o) => o.status === 429);
    expect(outcomes.filter((o) => o.status !== 200 && o.status !== 429).map((o) => o.error)).toEqual([]);
    expect(late.length, `answers later than ${SLO_MS + MARGIN_MS} ms, slowest ${Math.max(...outcomes.map((o) => o.ms)).toFixed(0)} ms`).toBe(0);
    // Goodput: at least a third of what the model can answer in the burst (it answers about all of it on a quiet machine).
    expect(answered.length).toBeGreaterThan((CAPACITY_PER_S * BURST_S) / 3);
    expect(refused.length).toBeGreaterThan(outcomes.length / 2);
    expect(refused[0]?.error).toMatch(/too many requests: model per-item:1 would answer in about \d+ ms/);
  }, 60_000);
});
