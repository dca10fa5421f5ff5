import { describe, expect, it } from "vitest";
import { EpsilonGreedyPolicy } from "./epsilon-greedy-policy.js";
import { Exp3Policy } from "./exp3-policy.js";
import { Exp4Policy } from "./exp4-policy.js";
import { loss } from "./loss.js";
import type { SelectionPolicy } from "./policy.js";
import { type Random, sampleBeta, seededRandom } from "./random.js";
import { SinglePolicy } from "./single-policy.js";
import { SplitPolicy } from "./split-policy.js";
import { ThompsonPolicy } from "./thompson-policy.js";

const models = ["good", "bad"];
/** Probability that each model answers a query correctly. */
const accuracy: Record<string, number> = { good: 0.9, bad: 0.3 };
const zeroOne = (label: string) => (output: string) => loss(output, label, { kind: "zero_one", scale: 1 });

/** Plays `rounds` queries with feedback; returns the state and how often the good model was chosen in the last 100. */
function play<S>(policy: SelectionPolicy<S>, rounds: number, random: Random): { state: S; goodShareAtEnd: number } {
  let state = policy.init(models);
  let goodAtEnd = 0;
  for (let t = 0; t < rounds; t++) {
    const chosen = policy.select(state, models, { random });
    const outputs = new Map(chosen.map((m) => [m, random() < (accuracy[m] ?? 0) ? "1" : "0"]));
    if (t >= rounds - 100 && chosen.includes("good") && chosen.length === 1) goodAtEnd++;
    state = policy.observe(state, { outputs, loss: zeroOne("1") });
  }
  return { state, goodShareAtEnd: goodAtEnd / 100 };
}

describe("selection policies (seeded, deterministic)", () => {
  it("exp3 converges to the good model within 500 feedbacks", () => {
    const policy = new Exp3Policy(0.1);
    const { state, goodShareAtEnd } = play(policy, 500, seededRandom(1));
    const [pGood] = policy.probabilities(state, models);
    expect(pGood).toBeGreaterThan(0.9);
    expect(goodShareAtEnd).toBeGreaterThan(0.85);
  });

  it("exp4 moves its weight to the better model within 50 feedbacks", () => {
    const policy = new Exp4Policy(0.5);
    const { state } = play(policy, 50, seededRandom(2));
    expect(policy.shares(state, models).get("good")).toBeGreaterThan(0.95);
  });

  it("epsilon-greedy and thompson settle on the good model within 300 feedbacks", () => {
    expect(play(new EpsilonGreedyPolicy(0.1), 300, seededRandom(3)).goodShareAtEnd).toBeGreaterThan(0.85);
    expect(play(new ThompsonPolicy(), 300, seededRandom(4)).goodShareAtEnd).toBeGreaterThan(0.9);
  });

  it("single always picks the first linked model", () => {
    expect(new SinglePolicy().select({}, ["a", "b"])).toEqual(["a"]);
    expect(new SinglePolicy().select({}, [])).toEqual([]);
  });

  it("split holds its proportions within four standard deviations", () => {
    const policy = new SplitPolicy({ a: 80, b: 20 });
    const random = seededRandom(5);
    const n = 10_000;
    let a = 0;
    for (let i = 0; i < n; i++) if (policy.select({}, ["a", "b"], { random })[0] === "a") a++;
    const sigma = Math.sqrt(n * 0.8 * 0.2);
    expect(Math.abs(a - 0.8 * n)).toBeLessThan(4 * sigma);
  });

  it("split is sticky per user and still splits users in proportion", () => {
    const policy = new SplitPolicy({ a: 50, b: 50 }, "app");
    const random = seededRandom(6);
    const first = new Map<string, string>();
    for (let u = 0; u < 2000; u++) first.set(`user-${u}`, policy.select({}, ["a", "b"], { uid: `user-${u}`, random })[0] as string);
    for (let u = 0; u < 2000; u++) expect(policy.select({}, ["a", "b"], { uid: `user-${u}`, random })[0]).toBe(first.get(`user-${u}`));
    const a = [...first.values()].filter((m) => m === "a").length;
    expect(Math.abs(a - 1000)).toBeLessThan(4 * Math.sqrt(2000 * 0.25));
  });

  it("exp4 combines numbers by weighted mean and labels by weighted vote, with confidence", () => {
    const policy = new Exp4Policy();
    const state = { logWeights: { a: Math.log(3), b: 0, c: 0 } };
    const mean = policy.combine(
      state,
      new Map([
        ["a", "1.0"],
        ["b", "3.0"],
      ]),
      ["a", "b", "c"],
    );
    expect(Number(mean?.output)).toBeCloseTo((0.6 * 1 + 0.2 * 3) / 0.8);
    expect(mean?.confidence).toBeCloseTo(0.8);
    const vote = policy.combine(
      state,
      new Map([
        ["a", "cat"],
        ["b", "dog"],
        ["c", "dog"],
      ]),
      ["a", "b", "c"],
    );
    expect(vote).toMatchObject({ output: "cat", models: ["a"] });
    expect(vote?.confidence).toBeCloseTo(0.6);
    expect(policy.combine(state, new Map(), ["a"])).toBeUndefined();
  });

  it("treats a newly linked model as untried", () => {
    const policy = new Exp3Policy(0.2);
    const state = policy.init(["a"]);
    const p = policy.probabilities(state, ["a", "b"]);
    expect(p[0]).toBeCloseTo(0.5);
    const next = policy.observe(state, { outputs: new Map([["b", "1"]]), loss: zeroOne("1") });
    expect(next.logWeights.b).toBeGreaterThan(0);
  });
});

describe("loss", () => {
  it("compares labels as numbers when both parse, else as strings", () => {
    expect(loss("1.0", "1", { kind: "zero_one", scale: 1 })).toBe(0);
    expect(loss(" cat", "cat", { kind: "zero_one", scale: 1 })).toBe(0);
    expect(loss("dog", "cat", { kind: "zero_one", scale: 1 })).toBe(1);
  });

  it("scales regression errors into [0, 1]", () => {
    expect(loss("3", "1", { kind: "absolute", scale: 4 })).toBe(0.5);
    expect(loss("3", "1", { kind: "squared", scale: 4 })).toBe(0.25);
    expect(loss("30", "1", { kind: "squared", scale: 4 })).toBe(1);
    expect(loss("nan?", "1", { kind: "absolute", scale: 4 })).toBe(1);
  });
});

describe("sampling", () => {
  it("draws Beta deviates with the right mean", () => {
    const random = seededRandom(7);
    let sum = 0;
    for (let i = 0; i < 20_000; i++) sum += sampleBeta(2, 6, random);
    expect(sum / 20_000).toBeCloseTo(0.25, 2);
  });
});
