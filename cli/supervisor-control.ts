/**
 * How `clipper restart` reaches the supervisor: HTTP/1.1 on a unix socket in
 * the data directory (mode 0600: only its owner can ask), one request per
 * restart, answered with one JSON line per progress step and a last line
 * with the outcome.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";

/** Unix socket paths are limited to 107 bytes; a deep data directory gets one in the temp directory instead. */
const MAX_SOCKET_PATH = 100;

export function supervisorSocketPath(dataDir: string): string {
  const inDataDir = path.join(dataDir, "run", "supervisor.sock");
  if (Buffer.byteLength(inDataDir) <= MAX_SOCKET_PATH) return inDataDir;
  const digest = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 16);
  return path.join(os.tmpdir(), `clipper-supervisor-${digest}.sock`);
}

export interface ControlHandlers {
  /** Restarts one service; resolves with its new pid; progress lines on the way. */
  restart(service: string, onProgress: (line: string) => void): Promise<{ pid: number }>;
}

export interface ControlServer {
  readonly socket: string;
  close(): Promise<void>;
}

type ControlLine = { progress: string } | { done: { pid: number } } | { error: string };

export async function serveControl(socket: string, handlers: ControlHandlers): Promise<ControlServer> {
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  // A socket file left by a supervisor that was killed: nothing listens on it any more (the caller checked).
  fs.rmSync(socket, { force: true });
  const server = http.createServer((req, res) => {
    const match = /^\/restart\/([a-z-]+)$/.exec(req.url ?? "");
    if (req.method !== "POST" || match === null) {
      res.writeHead(404, { "content-type": "application/json" }).end(`${JSON.stringify({ error: "unknown request" })}\n`);
      return;
    }
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const send = (line: ControlLine) => res.write(`${JSON.stringify(line)}\n`);
    handlers
      .restart(match[1] ?? "", (progress) => send({ progress }))
      .then(
        (done) => res.end(`${JSON.stringify({ done } satisfies ControlLine)}\n`),
        (err: unknown) => res.end(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) } satisfies ControlLine)}\n`),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => resolve());
  });
  fs.chmodSync(socket, 0o600);
  return {
    socket,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        fs.rmSync(socket, { force: true });
      }),
  };
}

/** Asks the supervisor listening on `socket` to restart a service; rejects with its error. */
export function requestRestart(socket: string, service: string, onProgress: (line: string) => void, timeoutMs: number): Promise<{ pid: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method: "POST", path: `/restart/${encodeURIComponent(service)}`, timeout: timeoutMs }, (res) => {
      let settled = false;
      const lines = createInterface({ input: res });
      lines.on("line", (text) => {
        let line: ControlLine;
        try {
          line = JSON.parse(text) as ControlLine;
        } catch {
          return;
        }
        if ("progress" in line) onProgress(line.progress);
        else if ("done" in line) {
          settled = true;
          resolve(line.done);
        } else {
          settled = true;
          reject(new Error(line.error));
        }
      });
      lines.on("close", () => {
        if (!settled) reject(new Error("the supervisor ended the request without an answer"));
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from the supervisor within ${Math.round(timeoutMs / 1000)} s`)));
    req.on("error", reject);
    req.end();
  });
}
