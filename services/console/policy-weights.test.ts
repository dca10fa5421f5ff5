import { describe, expect, it } from "vitest";
import { policyWeights } from "./policy-weights.js";

describe("policyWeights", () => {
  it("gives exp3's selection probabilities, exploration mixed in", () => {
    const w = policyWeights({ kind: "exp3", gamma: 0.2 }, ["a", "b"], JSON.stringify({ logWeights: { a: Math.log(3), b: 0 } }));
    expect(w?.a).toBeCloseTo(0.8 * 0.75 + 0.1, 10);
    expect(w?.b).toBeCloseTo(0.8 * 0.25 + 0.1, 10);
  });

  it("starts uniform before anything is learned", () => {
    expect(policyWeights({ kind: "exp4", eta: 0 }, ["a", "b"], "")).toEqual({ a: 0.5, b: 0.5 });
    expect(policyWeights({ kind: "exp3", gamma: 0 }, ["a"], "")).toEqual({ a: 1 });
  });

  it("gives mean rewards for epsilon-greedy and Thompson sampling", () => {
    expect(policyWeights({ kind: "epsilon_greedy", epsilon: 0.1 }, ["a", "b"], JSON.stringify({ rewards: { a: 3 }, counts: { a: 4 } }))).toEqual({ a: 0.75 });
    expect(policyWeights({ kind: "thompson" }, ["a"], JSON.stringify({ successes: { a: 2 }, failures: { a: 0 } }))).toEqual({ a: 0.75 });
  });

  it("says nothing for policies that learn nothing, or a state that is not JSON", () => {
    expect(policyWeights({ kind: "single" }, ["a"], "")).toBeUndefined();
    expect(policyWeights({ kind: "split", weights: { a: 1 } }, ["a"], "")).toBeUndefined();
    expect(policyWeights({ kind: "exp3", gamma: 0.1 }, ["a"], "{not json")).toBeUndefined();
  });
});
