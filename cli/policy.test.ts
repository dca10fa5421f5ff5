import { describe, expect, it } from "vitest";
import { LossKind } from "../gen/clipper/v1/resources_pb.js";
import { describePolicy, parsePolicy } from "./policy.js";

describe("clipper app policy flags", () => {
  it("builds each policy", () => {
    expect(parsePolicy({ kind: "exp3", gamma: "0.2" }).kind).toEqual({ case: "exp3", value: expect.objectContaining({ gamma: 0.2 }) });
    const split = parsePolicy({ kind: "split", weights: "digits:1=0.9,digits:2=0.1" });
    expect(split.kind.case === "split" && split.kind.value.weights).toEqual({ "digits:1": 0.9, "digits:2": 0.1 });
    const exp4 = parsePolicy({ kind: "exp4", eta: "1", loss: "absolute", lossScale: "10" });
    expect([exp4.loss, exp4.lossScale]).toEqual([LossKind.ABSOLUTE, 10]);
    expect(describePolicy(exp4)).toBe("exp4 eta 1, loss absolute");
    expect(describePolicy(undefined)).toBe("single");
  });

  it("names the flag at fault", () => {
    expect(() => parsePolicy({ kind: "bandit" })).toThrow('policy must be one of single, split, exp3, exp4, epsilon_greedy, thompson, got "bandit"');
    expect(() => parsePolicy({ kind: "split" })).toThrow("split needs --weights");
    expect(() => parsePolicy({ kind: "split", weights: "a=x" })).toThrow('--weights entry "a=x" must look like model=weight');
    expect(() => parsePolicy({ kind: "exp3", eta: "1" })).toThrow("--eta applies to exp4 only");
    expect(() => parsePolicy({ kind: "exp3", loss: "hinge" })).toThrow("--loss must be one of zero_one, squared, absolute");
    expect(() => parsePolicy({ kind: "exp3", gamma: "lots" })).toThrow('--gamma must be a number, got "lots"');
  });
});
