import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWrkResult, runWrk, writeWrkPostScript, wrkLoadResult, wrkPostScript } from "./wrk.js";

// A real wrk against a loopback server that answers every third request 500 and every third a default.
describe("wrk with the POST script", () => {
  let server: Server;
  let url: string;
  const bodies: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "wrk-test-"));

  beforeAll(async () => {
    let n = 0;
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString();
      });
      req.on("end", () => {
        if (bodies.length < 10) bodies.push(body);
        n++;
        if (n % 3 === 0) res.writeHead(500).end("no");
        else res.writeHead(200, { "content-type": "application/json" }).end(n % 3 === 1 ? '{"data":[0]}' : '{"data":[true]}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/models/m/infer`;
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends the body as is and counts answers other than 200 and the defaults", async () => {
    const body = `{"inputs":[{"name":"input","data":[1,2]}],"odd":"]]'\\""}`;
    const scriptPath = writeWrkPostScript(dir, "post", { body, defaultMarker: '"data":[true]' });
    const r = await runWrk({ url, scriptPath, concurrency: 1, durationS: 1 });
    expect(bodies[0]).toBe(body);
    expect(r.requests).toBeGreaterThan(30);
    // One request in three each, within the one in flight when wrk stopped.
    expect(Math.abs(r.bad - r.requests / 3)).toBeLessThanOrEqual(2);
    expect(Math.abs(r.defaults - r.requests / 3)).toBeLessThanOrEqual(2);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    const point = wrkLoadResult(r, 1);
    expect(point.ok + point.defaults + point.errors).toBe(r.requests);
    expect(point.errorRate).toBeCloseTo(r.bad / r.requests, 5);
  });

  it("refuses a target off loopback", async () => {
    await expect(runWrk({ url: "http://10.0.0.1:80/", scriptPath: "x", concurrency: 1, durationS: 1 })).rejects.toThrow(/127\.0\.0\.1/);
  });

  it("refuses wrk output without the script's result line", () => {
    expect(() => parseWrkResult("Running 1s test @ http://127.0.0.1:1/\n")).toThrow(/no result line/);
  });

  it("quotes a body holding the long-bracket closer, or ending with a bracket", () => {
    expect(wrkPostScript({ body: "a]]b]=]c" })).toContain("wrk.body = [==[a]]b]=]c]==]");
    expect(wrkPostScript({ body: "{}", defaultMarker: '"data":[true]' })).toContain('local default_marker = [=["data":[true]]=]');
  });
});
