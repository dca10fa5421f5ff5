import { describe, expect, it } from "vitest";
import { Code } from "../shared/index.js";
import { httpStatusOf } from "./http-status.js";
import { BadRequest, parsePolicy } from "./mutations.js";

describe("parsePolicy", () => {
  it("reads every kind the registry knows", () => {
    expect(parsePolicy({ kind: "single" })).toEqual({ kind: "single" });
    expect(parsePolicy({ kind: "exp3", gamma: 0.2 })).toEqual({ kind: "exp3", gamma: 0.2 });
    expect(parsePolicy({ kind: "exp4", eta: 0.5 })).toEqual({ kind: "exp4", eta: 0.5 });
    expect(parsePolicy({ kind: "epsilon_greedy", epsilon: 0.1 })).toEqual({ kind: "epsilon_greedy", epsilon: 0.1 });
    expect(parsePolicy({ kind: "thompson" })).toEqual({ kind: "thompson" });
    expect(parsePolicy({ kind: "split", weights: { a: 3, "b:2": 1 } })).toEqual({ kind: "split", weights: { a: 3, "b:2": 1 } });
  });

  it("names the field of a malformed policy", () => {
    expect(() => parsePolicy("exp3")).toThrow(new BadRequest("the body must be a JSON object"));
    expect(() => parsePolicy({ kind: "greedy" })).toThrow(/"kind" must be one of single, split, exp3/);
    expect(() => parsePolicy({ kind: "exp3", gamma: 2 })).toThrow('"gamma" must be a number from 0 to 1');
    expect(() => parsePolicy({ kind: "exp3" })).toThrow('"gamma" must be a number from 0 to 1');
    expect(() => parsePolicy({ kind: "split", weights: { a: -1 } })).toThrow('"weights.a" must be a number of at least 0');
    expect(() => parsePolicy({ kind: "split", weights: {} })).toThrow('"weights" must name at least one model');
  });
});

describe("httpStatusOf", () => {
  it("passes the registry's refusals through as the matching HTTP status", () => {
    expect(httpStatusOf(Code.PermissionDenied)).toBe(403);
    expect(httpStatusOf(Code.Unauthenticated)).toBe(401);
    expect(httpStatusOf(Code.InvalidArgument)).toBe(400);
    expect(httpStatusOf(Code.NotFound)).toBe(404);
    expect(httpStatusOf(Code.AlreadyExists)).toBe(409);
    expect(httpStatusOf(Code.Unavailable)).toBe(503);
    expect(httpStatusOf(Code.Internal)).toBe(502);
  });
});
