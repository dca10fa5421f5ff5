import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callLatenciesMs, grpcFrame, parseH2loadSummary, runH2load } from "./h2load.js";

// A real h2load against a loopback HTTP/2 server that answers each call as a gRPC server would
// (a 200, one frame, grpc-status in the trailers), and every fourth one with HTTP 503.
describe("h2load as a gRPC client", () => {
  let server: Http2Server;
  let target: string;
  const seen: { path: string; contentType: string; te: string; body: Buffer }[] = [];
  const dir = mkdtempSync(join(tmpdir(), "h2load-test-"));

  beforeAll(async () => {
    let n = 0;
    server = createServer();
    server.on("stream", (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (d: Buffer) => chunks.push(d));
      stream.on("end", () => {
        if (seen.length < 5) {
          seen.push({ path: String(headers[":path"]), contentType: String(headers["content-type"]), te: String(headers.te), body: Buffer.concat(chunks) });
        }
        n++;
        if (n % 4 === 0) {
          stream.respond({ ":status": 503 }, { endStream: true });
          return;
        }
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(grpcFrame(Buffer.from([8, 1])));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends the message as one gRPC frame with gRPC's headers, and counts the calls not answered 2xx", async () => {
    const message = Uint8Array.from([10, 3, 1, 2, 3]);
    const r = await runH2load({ target, path: "/pkg.Service/Method", message, concurrency: 4, connections: 2, durationS: 1, workDir: dir });
    expect(seen[0]).toEqual({ path: "/pkg.Service/Method", contentType: "application/grpc", te: "trailers", body: grpcFrame(message) });
    expect(r.requests).toBeGreaterThan(30);
    // One call in four, within the ones in flight when the run ended.
    expect(Math.abs(r.errors - (r.requests + r.errors) / 4)).toBeLessThanOrEqual(4);
    expect(r.rps).toBeCloseTo(r.requests, 5);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    expect(r.clientCpuMs).toBeGreaterThan(0);
  });

  it("frames a message: a zero flag byte, its length big-endian, the bytes", () => {
    expect([...grpcFrame(Uint8Array.from([7, 8, 9]))]).toEqual([0, 0, 0, 0, 3, 7, 8, 9]);
  });

  it("refuses a target off loopback, and calls that do not spread evenly over the connections", async () => {
    const common = { path: "/a/b", message: new Uint8Array(), durationS: 1, workDir: dir };
    await expect(runH2load({ ...common, target: "10.0.0.1:80", concurrency: 1 })).rejects.toThrow(/127\.0\.0\.1/);
    await expect(runH2load({ ...common, target, concurrency: 6, connections: 4 })).rejects.toThrow(/evenly/);
  });

  it("refuses output it does not understand, and reads the per-call log's durations", () => {
    expect(() => parseH2loadSummary("starting benchmark...\n")).toThrow(/not understood/);
    expect(callLatenciesMs("1700000000000000\t200\t1500\n1700000000000100\t200\t500\n")).toEqual([0.5, 1.5]);
  });
});
