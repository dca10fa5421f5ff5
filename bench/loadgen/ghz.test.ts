import { describe, expect, it } from "vitest";
import { ghzLoadResult, parseGhzSummary } from "./ghz.js";

// ghz v0.93.0's summary of a -n 200 run against a grpc-js server, with the status and error lines of a loaded -z run added.
const SUMMARY = `
Summary:
  Count:	200
  Total:	292.86 ms
  Slowest:	155.27 ms
  Fastest:	0.84 ms
  Average:	5.69 ms
  Requests/sec:	682.91

Response time histogram:
  0.840 [1]	|
  16.282 [195]	|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎
  31.725 [0]	|
  47.168 [0]	|
  62.611 [0]	|
  78.053 [0]	|
  93.496 [0]	|
  108.939 [0]	|
  124.382 [0]	|
  139.825 [0]	|
  155.267 [4]	|∎

Latency distribution:
  10 % in 1.52 ms 
  25 % in 1.92 ms 
  50 % in 2.50 ms 
  75 % in 3.23 ms 
  90 % in 4.42 ms 
  95 % in 5.02 ms 
  99 % in 154.61 ms 

Status code distribution:
  [OK]   200 responses   
  [ResourceExhausted]   21 responses   
  [Unavailable]   64 responses   

Error distribution:
  [21]   rpc error: code = ResourceExhausted desc = model m:1 would answer in about 1012 ms (56 queries ahead), after the deadline 1000 ms away: the router is overloaded, retry later   
  [64]   rpc error: code = Unavailable desc = transport is closing   
`;

describe("parseGhzSummary", () => {
  it("reads calls/s, p99 and the OK count", () => {
    const s = parseGhzSummary(SUMMARY);
    expect(s.rps).toBe(682.91);
    expect(s.p99Ms).toBe(154.61);
    expect(s.ok).toBe(200);
    expect([s.p50Ms, s.p90Ms, s.meanMs, s.maxMs, s.count, s.totalS]).toEqual([2.5, 4.42, 5.69, 155.27, 200, 0.29286]);
  });

  it("counts the server's errors, not the calls a -z run cuts at its end", () => {
    const s = parseGhzSummary(SUMMARY);
    expect(s.errors).toEqual([{ count: 21, message: expect.stringContaining("code = ResourceExhausted") }]);
  });

  it("makes a closed-loop point of it, errors counted", () => {
    const p = ghzLoadResult(parseGhzSummary(SUMMARY), 64);
    expect(p.requests).toBe(221);
    expect(p.errorRate).toBeCloseTo(21 / 221, 5);
    expect(p.throughput).toBeCloseTo(200 / 0.29286, 1);
  });

  it("refuses text that is not a ghz summary", () => {
    expect(() => parseGhzSummary("Error: unknown flag --foo")).toThrow(/not understood/);
  });
});
