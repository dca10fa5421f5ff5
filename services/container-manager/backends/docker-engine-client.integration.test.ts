import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngineClient, DockerEngineError } from "./docker-engine-client.js";

/** A multiplexed log frame: stream byte, three zeros, big-endian length, payload. */
function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("DockerEngineClient over a unix socket (a stand-in engine)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-engine-"));
  const socketPath = path.join(dir, "engine.sock");
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith("/containers/abc/logs")) {
      const all = Buffer.concat([
        frame(1, "2026-12-02T04:02:50Z hello "),
        frame(1, "world\n2026-12-02T04:02:51Z second\n"),
        frame(2, "2026-12-02T04:02:52Z oops"),
      ]);
      // Frames split at odd places, as the socket may deliver them.
      res.write(all.subarray(0, 5));
      setTimeout(() => {
        res.write(all.subarray(5, 40));
        res.end(all.subarray(40));
      }, 20);
      return;
    }
    if (req.url === "/containers/missing/json") {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ cause: "no such container", message: "no container with name or ID missing found" }));
      return;
    }
    if (req.url === "/containers/json?all=true&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D") {
      res.end(JSON.stringify([{ Id: "x", Names: ["/x"], Labels: { a: "b" }, State: "running" }]));
      return;
    }
    if (req.url === "/images/huge/json") {
      res.end("x".repeat(4096));
      return;
    }
    res.writeHead(500);
    res.end(`unexpected ${req.method} ${req.url}`);
  });

  beforeAll(() => new Promise<void>((resolve) => server.listen(socketPath, resolve)));
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("demultiplexes stdout and stderr into lines with their timestamps", async () => {
    const lines: string[] = [];
    await new DockerEngineClient({ socketPath }).followLogs("abc", {
      maxLineChars: 100,
      signal: new AbortController().signal,
      onLine: (stream, text, timeMs) => lines.push(`${stream} ${new Date(timeMs).toISOString()} ${text}`),
    });
    expect(lines).toEqual(["stdout 2026-12-02T04:02:50.000Z hello world", "stdout 2026-12-02T04:02:51.000Z second", "stderr 2026-12-02T04:02:52.000Z oops"]);
  });

  it("sends label filters, and turns an error status into DockerEngineError with the engine's message", async () => {
    const client = new DockerEngineClient({ socketPath });
    expect((await client.listContainers(["a=b"])).map((c) => c.Id)).toEqual(["x"]);
    const err = (await client.inspectContainer("missing").catch((e: unknown) => e)) as DockerEngineError;
    expect(err).toBeInstanceOf(DockerEngineError);
    expect(err.statusCode).toBe(404);
    expect(err.message).toBe("GET /containers/missing/json: 404 no container with name or ID missing found");
  });

  it("refuses an answer larger than its bound", async () => {
    const err = await new DockerEngineClient({ socketPath, maxResponseBytes: 1024 }).imageExists("huge").catch((e: unknown) => e);
    expect(String(err)).toMatch(/exceeds 1024 bytes/);
  });
});
