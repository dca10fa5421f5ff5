import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LatencyHistogram } from "./histogram.js";
import { repeatingMix, uniqueMix } from "./inputs.js";
import { runClosedLoop, runOpenLoop } from "./loadgen.js";
import { busyCores } from "./machine-load.js";
import { gatewayDefault, restTarget } from "./targets.js";

describe("LatencyHistogram", () => {
  it("answers percentiles within 1% of the exact values", () => {
    const h = new LatencyHistogram();
    for (let v = 1; v <= 10_000; v++) h.record(v);
    expect(h.count).toBe(10_000);
    for (const [q, exact] of [
      [0.5, 5000],
      [0.99, 9900],
      [0.999, 9990],
    ] as const) {
      expect(Math.abs(h.quantile(q) - exact) / exact).toBeLessThan(0.011);
    }
    expect(h.max).toBe(10_000);
    expect(h.meanMicros).toBeCloseTo(5000.5, 5);
  });

  it("is empty until something is recorded and merges counts", () => {
    const a = new LatencyHistogram();
    expect(a.quantile(0.5)).toBe(0);
    const b = new LatencyHistogram();
    b.record(100);
    a.merge(b);
    expect(a.count).toBe(1);
  });
});

describe("machine load", () => {
  it.skipIf(process.platform !== "linux")("reads how many cores are busy from /proc/stat", async () => {
    const busy = await busyCores(100, 2);
    expect(busy).toBeGreaterThanOrEqual(0);
    expect(busy).toBeLessThanOrEqual(2);
  });
});

describe("input mixes", () => {
  it("unique mixes never repeat a body; repeating mixes cycle", () => {
    const unique = uniqueMix("u", [1, 2, 3]);
    const bodies = new Set(Array.from({ length: 1000 }, (_, i) => unique.restBody(i)));
    expect(bodies.size).toBe(1000);
    expect(JSON.parse(unique.restBody(5))).toEqual({ input: unique.values(5) });
    const repeating = repeatingMix("r", [[1], [2]]);
    expect([0, 1, 2, 3].map((i) => repeating.restBody(i))).toEqual(['{"input":[1]}', '{"input":[2]}', '{"input":[1]}', '{"input":[2]}']);
  });
});

describe("the load generator against a local HTTP server", () => {
  let server: http.Server;
  let url: string;
  const received: string[] = [];

  beforeAll(async () => {
    // Every 10th request is a default, every 25th fails: the generator must count both.
    let n = 0;
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        n++;
        if (received.length < 10_000) received.push(Buffer.concat(chunks).toString());
        const [status, text] = n % 25 === 0 ? [500, "boom"] : [200, JSON.stringify({ output: 1, default: n % 10 === 0 })];
        res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/app/predict`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it.each(["raw", "node-http"] as const)("runs a closed loop over the %s client and accounts for every measured request", async (client) => {
    const target = restTarget({ url, mix: uniqueMix("u", [0, 1]), connections: 4, isDefault: gatewayDefault, client });
    try {
      const r = await runClosedLoop({ send: target.send, concurrency: 4, durationMs: 300, warmupMs: 50, maxRequests: 2000 });
      expect(r.requests).toBeGreaterThan(0);
      expect(r.ok + r.defaults + r.errors).toBe(r.requests);
      expect(r.errors).toBeGreaterThan(0);
      expect(r.defaults).toBeGreaterThan(0);
      expect(r.firstError).toMatch(/HTTP 500/);
      expect(r.p50Ms).toBeGreaterThan(0);
      expect(r.p50Ms).toBeLessThanOrEqual(r.p99Ms);
      expect(r.p99Ms).toBeLessThanOrEqual(r.maxMs);
      expect(JSON.parse(received[0] ?? "")).toHaveProperty("input");
    } finally {
      target.close();
    }
  });

  it("runs an open loop on a schedule and stops at the request bound", async () => {
    const target = restTarget({ url, mix: repeatingMix("r", [[1, 2]]), connections: 8, isDefault: gatewayDefault });
    try {
      const r = await runOpenLoop({ send: target.send, ratePerSecond: 500, maxInFlight: 8, durationMs: 5000, warmupMs: 0, maxRequests: 100 });
      expect(r.requests).toBe(100);
      expect(r.ok + r.defaults + r.errors + r.dropped).toBe(100);
      expect(r.targetRate).toBe(500);
    } finally {
      target.close();
    }
  });

  it("reads chunked responses (Ray Serve's proxy sends them)", async () => {
    const chunked = http.createServer((_req, res) => {
      res.write('{"output":');
      res.end('1,"default":true}');
    });
    await new Promise<void>((resolve) => chunked.listen(0, "127.0.0.1", resolve));
    const target = restTarget({
      url: `http://127.0.0.1:${(chunked.address() as AddressInfo).port}/x`,
      mix: uniqueMix("u", [1]),
      connections: 2,
      isDefault: gatewayDefault,
    });
    try {
      const r = await runClosedLoop({ send: target.send, concurrency: 2, durationMs: 5000, warmupMs: 0, maxRequests: 20 });
      expect(r.errors).toBe(0);
      expect(r.defaults).toBe(r.requests);
    } finally {
      target.close();
      chunked.closeAllConnections();
      await new Promise((resolve) => chunked.close(resolve));
    }
  });

  it("counts failures of an unreachable server as errors instead of hanging", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const target = restTarget({ url: `http://127.0.0.1:${port}/x`, mix: uniqueMix("u", [1]), connections: 2 });
    try {
      const r = await runClosedLoop({ send: target.send, concurrency: 2, durationMs: 100, warmupMs: 0, maxRequests: 50 });
      expect(r.errors).toBe(r.requests);
      expect(r.firstError).toMatch(/ECONNREFUSED/);
    } finally {
      target.close();
    }
  });

  it("refuses targets other than 127.0.0.1", () => {
    expect(() => restTarget({ url: "http://example.com/x", mix: uniqueMix("u", [1]), connections: 1 })).toThrow(/127\.0\.0\.1/);
  });
});
