import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  isPortFree,
  isRunning,
  PortInUseError,
  planServices,
  type RecordedService,
  readServicesFile,
  type ServiceLaunch,
  type ServicesFile,
  StartError,
  startServices,
  stopServices,
} from "./supervisor.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * A stand-in for a real service: serves grpc.health (or GET /healthz) on --port,
 * and on request starts a grandchild in its process group, ignores SIGTERM,
 * fails at start, or never becomes healthy.
 */
const standIn = `
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";
import { startGrpcServer } from ${JSON.stringify(path.join(repoRoot, "services/shared/index.ts"))};
const { values } = parseArgs({ options: {
  port: { type: "string" }, health: { type: "string", default: "grpc" }, "grandchild-pid-file": { type: "string" },
  "ignore-term": { type: "boolean" }, fail: { type: "boolean" }, silent: { type: "boolean" },
} });
if (values.fail) { console.error("boom: cannot open the store"); process.exit(3); }
if (values["grandchild-pid-file"]) {
  const grandchild = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  fs.writeFileSync(values["grandchild-pid-file"], String(grandchild.pid));
}
if (values["ignore-term"]) process.on("SIGTERM", () => console.log("ignoring SIGTERM"));
if (values.silent) setInterval(() => {}, 1000);
else if (values.health === "http") {
  const server = http.createServer((req, res) => { res.statusCode = req.url === "/healthz" ? 200 : 404; res.end("ok"); });
  server.listen(Number(values.port), "127.0.0.1");
  if (!values["ignore-term"]) process.on("SIGTERM", () => server.close(() => process.exit(0)));
} else {
  const server = await startGrpcServer({ port: Number(values.port), services: [] });
  console.log("serving on", server.address);
  if (!values["ignore-term"]) process.on("SIGTERM", () => server.close(100).then(() => process.exit(0)));
}
`;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function pidAlive(pid: number): boolean {
  return isRunning({ pid, startTicks: null });
}

describe("supervisor", () => {
  let workDir: string;
  let script: string;
  const started: ServicesFile[] = [];
  const grandchildren: number[] = [];

  beforeAll(() => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-cli-supervisor-"));
    script = path.join(workDir, "stand-in.mts");
    fs.writeFileSync(script, standIn);
  });

  afterAll(async () => {
    // Whatever a failed assertion left behind.
    for (const file of started) await stopServices(file, { graceMs: 1000 });
    for (const pid of grandchildren) if (pidAlive(pid)) process.kill(pid, "SIGKILL");
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  async function launch(name: string, extra: string[] = [], health: ServiceLaunch["health"] = { kind: "grpc" }): Promise<ServiceLaunch> {
    const port = await freePort();
    return {
      name,
      argv: [process.execPath, "--import", "tsx", script, "--port", String(port), ...extra],
      cwd: repoRoot,
      env: {},
      port,
      metricsPort: null,
      health,
    };
  }

  function dataDir(name: string): string {
    return path.join(workDir, name);
  }

  function expectAllGone(services: RecordedService[]): void {
    for (const s of services) expect(isRunning(s), `${s.name} (pid ${s.pid}) still runs`).toBe(false);
  }

  it("starts services detached, records them, and stops them with their process groups", async () => {
    const dir = dataDir("up-down");
    const grandchildPidFile = path.join(workDir, "grandchild.pid");
    const launches = [
      await launch("registry", ["--grandchild-pid-file", grandchildPidFile]),
      await launch("gateway", ["--health", "http"], { kind: "http", path: "/healthz" }),
    ];
    const progress: string[] = [];
    const file = await startServices(launches, { dataDir: dir, host: "127.0.0.1", healthTimeoutMs: 20_000, onProgress: (l) => progress.push(l) });
    started.push(file);
    const grandchild = Number(fs.readFileSync(grandchildPidFile, "utf8"));
    grandchildren.push(grandchild);

    expect(file.services.map((s) => s.name)).toEqual(["registry", "gateway"]);
    expect(readServicesFile(dir)).toEqual(file);
    for (const s of file.services) expect(isRunning(s)).toBe(true);
    expect(pidAlive(grandchild)).toBe(true);
    expect(fs.readFileSync(path.join(dir, "logs", "registry.log"), "utf8")).toContain("serving on");
    expect(progress).toContain("gateway is healthy");
    expect(await isPortFree("127.0.0.1", launches[0]?.port ?? 0)).toBe(false);

    const stopping: string[] = [];
    await stopServices(file, { graceMs: 10_000, onProgress: (l) => stopping.push(l) });
    expect(stopping[0]).toMatch(/^stopping gateway/);
    expect(stopping.at(-1)).toMatch(/^stopping registry/);
    expectAllGone(file.services);
    // The grandchild ignored nothing but was never told to stop: the group kill took it.
    const deadline = Date.now() + 2000;
    while (pidAlive(grandchild) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(pidAlive(grandchild)).toBe(false);
  });

  it("kills a service that ignores SIGTERM once the grace period ends", async () => {
    const dir = dataDir("ignore-term");
    const file = await startServices([await launch("router", ["--ignore-term"])], { dataDir: dir, host: "127.0.0.1", healthTimeoutMs: 20_000 });
    started.push(file);
    const lines: string[] = [];
    await stopServices(file, { graceMs: 500, onProgress: (l) => lines.push(l) });
    expect(lines.some((l) => l.includes("did not stop within"))).toBe(true);
    expectAllGone(file.services);
  });

  it("reports which service failed with its log tail and stops the ones already started", async () => {
    const dir = dataDir("fail");
    const first = await launch("registry");
    const err = await startServices([first, await launch("container-manager", ["--fail"])], {
      dataDir: dir,
      host: "127.0.0.1",
      healthTimeoutMs: 20_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    const startError = err as StartError;
    expect(startError.service).toBe("container-manager");
    expect(startError.reason).toBe("exited with code 3");
    expect(startError.logTail.join("\n")).toContain("boom: cannot open the store");
    expect(readServicesFile(dir)).toBeUndefined();
    expect(await isPortFree("127.0.0.1", first.port)).toBe(true);
  });

  it("gives up on a service that never becomes healthy", async () => {
    const dir = dataDir("silent");
    const err = (await startServices([await launch("router", ["--silent"])], { dataDir: dir, host: "127.0.0.1", healthTimeoutMs: 1500 }).catch(
      (e: unknown) => e,
    )) as StartError;
    expect(err).toBeInstanceOf(StartError);
    expect(err.reason).toBe("not healthy after 2 s");
    expect(readServicesFile(dir)).toBeUndefined();
  });

  it("refuses to start when a port is taken, before starting anything", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    try {
      const taken = (blocker.address() as net.AddressInfo).port;
      const dir = dataDir("port-in-use");
      const free = await launch("registry");
      const busy = { ...(await launch("router")), port: taken };
      const err = await startServices([free, busy], { dataDir: dir, host: "127.0.0.1", healthTimeoutMs: 5000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect((err as PortInUseError).message).toBe(`router: port ${taken} on 127.0.0.1 is already in use by another process`);
      expect(fs.existsSync(path.join(dir, "logs"))).toBe(false);
      expect(await isPortFree("127.0.0.1", free.port)).toBe(true);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it("plans the real services with their documented flags", () => {
    const launches = planServices({
      repoRoot: "/repo",
      dataDir: "/data",
      host: "127.0.0.1",
      ports: { gateway: 2337, registry: 2338, router: 2339, containerManager: 2340 },
      store: "redis",
      redisUrl: "redis://127.0.0.1:6379",
      node: "/usr/bin/node",
    });
    const byName = Object.fromEntries(launches.map((l) => [l.name, l]));
    expect(launches.map((l) => l.name)).toEqual(["registry", "container-manager", "router", "gateway"]);
    expect(byName.registry?.argv).toEqual([
      "/usr/bin/node",
      "/repo/dist/registry/main.mjs",
      "--host",
      "127.0.0.1",
      "--port",
      "2338",
      "--metrics-port",
      "10338",
      "--data-dir",
      "/data",
      "--store",
      "redis",
      "--redis-url",
      "redis://127.0.0.1:6379",
    ]);
    expect(byName["container-manager"]?.argv.slice(2)).toEqual([
      "--host",
      "127.0.0.1",
      "--port",
      "2340",
      "--metrics-port",
      "10340",
      "--registry",
      "127.0.0.1:2338",
      "--data-dir",
      "/data",
    ]);
    expect(byName.router?.argv.slice(2)).toEqual(["--host", "127.0.0.1", "--port", "2339", "--metrics-port", "10339", "--registry", "127.0.0.1:2338"]);
    expect(byName.gateway?.argv.slice(2)).toEqual(["--host", "127.0.0.1", "--port", "2337", "--registry", "127.0.0.1:2338", "--router", "127.0.0.1:2339"]);
    expect(byName.gateway?.health).toEqual({ kind: "http", path: "/healthz" });
    expect(byName.gateway?.metricsPort).toBeNull();
    for (const l of launches) {
      expect(l.cwd).toBe("/repo");
      expect(l.env).toEqual({ CLIPPER_DATA_DIR: "/data" });
    }
  });

  it("plans no router service when the gateway runs the router in-process", () => {
    const launches = planServices({
      repoRoot: "/repo",
      dataDir: "/data",
      host: "127.0.0.1",
      ports: { gateway: 2337, registry: 2338, router: 2339, containerManager: 2340 },
      store: "embedded",
      node: "/usr/bin/node",
      routerInProcess: true,
    });
    expect(launches.map((l) => l.name)).toEqual(["registry", "container-manager", "gateway"]);
    expect(launches.find((l) => l.name === "gateway")?.argv.slice(2)).toEqual([
      "--host",
      "127.0.0.1",
      "--port",
      "2337",
      "--registry",
      "127.0.0.1:2338",
      "--router",
      "in-process",
    ]);
  });
});
