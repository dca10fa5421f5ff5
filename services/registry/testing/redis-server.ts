import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/** A real redis-server for tests, on a free loopback port, persisting to an AOF in its own temp dir. */
export interface TestRedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops redis-server (SHUTDOWN-like SIGTERM, which flushes the AOF) and starts it again on the same port and dir. */
  restart(): Promise<void>;
  /** Stops redis-server and removes its dir. */
  stop(): Promise<void>;
}

/** The redis-server binary on PATH, or undefined. CI installs it (apt-get install redis-server). */
export function findRedisServer(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function startRedisServer(): Promise<TestRedisServer> {
  const binary = findRedisServer();
  if (binary === undefined) throw new Error("redis-server is not installed: apt-get install -y redis-server");
  const dir = mkdtempSync(join(tmpdir(), "clipper-redis-"));
  const port = await freePort();
  let child = await launch(binary, port, dir);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async restart() {
      await terminate(child);
      child = await launch(binary, port, dir);
    },
    async stop() {
      await terminate(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function launch(binary: string, port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", dir, "--daemonize", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${output}`);
    if (await answersPing(port)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s: ${output}`);
}

async function answersPing(port: number): Promise<boolean> {
  const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}
