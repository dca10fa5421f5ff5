import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { createGrpcTransport } from "../shared/index.js";
import { startRedisServer, type TestRedisServer } from "./testing/redis-server.js";

const MAIN = join(import.meta.dirname, "main.ts");

interface RunningRegistry {
  port: number;
  metricsPort: number;
  child: ChildProcessWithoutNullStreams;
}

const running = new Set<ChildProcessWithoutNullStreams>();

/** Starts main.ts on free ports and waits for its {"msg":"listening"} line. */
async function startRegistry(args: string[]): Promise<RunningRegistry> {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, "--port", "0", "--metrics-port", "0", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  running.add(child);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  const listening = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`registry did not log "listening" within 20 s: ${stderr}`)), 20_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited with ${code}: ${stderr}`));
    });
    lines.on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number; metricsPort?: number };
      if (entry.msg === "listening" && entry.port !== undefined && entry.metricsPort !== undefined) {
        clearTimeout(timer);
        resolve({ port: entry.port, metricsPort: entry.metricsPort });
      }
    });
  });
  return { ...listening, child };
}

async function stopRegistry(r: RunningRegistry): Promise<number | null> {
  const exited = once(r.child, "exit");
  r.child.kill("SIGTERM");
  const [code] = (await exited) as [number | null];
  running.delete(r.child);
  return code;
}

afterAll(() => {
  for (const child of running) child.kill("SIGKILL");
});

async function writeAndRead(port: number, write: boolean): Promise<string[]> {
  const transport = createGrpcTransport({ address: `127.0.0.1:${port}` });
  try {
    const client = createClient(ManagementService, transport);
    if (write) await client.createApplication({ name: "kept", inputType: InputType.FLOATS, sloMicros: 1234n });
    return (await client.listApplications({})).applications.map((a) => `${a.name}:${a.sloMicros}`);
  } finally {
    transport.close();
  }
}

describe("registry main", () => {
  it("serves with the embedded store, exits 0 on SIGTERM and keeps its data across restarts", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "clipper-registry-main-"));
    try {
      const first = await startRegistry(["--data-dir", dataDir]);
      expect(await writeAndRead(first.port, true)).toEqual(["kept:1234"]);
      const metrics = await fetch(`http://127.0.0.1:${first.metricsPort}/metrics`).then((r) => r.text());
      expect(metrics).toMatch(/clipper_registry_revision\{service="registry"\} 1/);
      expect(await stopRegistry(first)).toBe(0);
      const second = await startRegistry(["--data-dir", dataDir]);
      expect(await writeAndRead(second.port, false)).toEqual(["kept:1234"]);
      expect(await stopRegistry(second)).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("rejects a bad flag with a clear message and exit code 2", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, "--store", "sqlite"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toMatch(/registry: invalid --store="sqlite": expected one of embedded, redis/);
  });

  describe("with --store redis", () => {
    let redis: TestRedisServer;
    beforeAll(async () => {
      redis = await startRedisServer();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it("keeps configuration across a registry restart and a redis-server restart", async () => {
      const args = ["--store", "redis", "--redis-url", redis.url, "--redis-prefix", "main-test:"];
      const first = await startRegistry(args);
      expect(await writeAndRead(first.port, true)).toEqual(["kept:1234"]);
      expect(await stopRegistry(first)).toBe(0);
      await redis.restart();
      const second = await startRegistry(args);
      expect(await writeAndRead(second.port, false)).toEqual(["kept:1234"]);
      expect(await stopRegistry(second)).toBe(0);
    });

    it("exits 2 naming the URL when redis cannot be reached", async () => {
      const child = spawn(
        process.execPath,
        ["--import", "tsx", MAIN, "--port", "0", "--metrics-port", "0", "--store", "redis", "--redis-url", "redis://127.0.0.1:1"],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, "exit")) as [number | null];
      expect(code).toBe(2);
      expect(stderr).toMatch(/cannot reach redis at redis:\/\/127.0.0.1:1/);
    });
  });
});
