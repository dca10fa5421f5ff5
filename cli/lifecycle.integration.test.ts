import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliError } from "./cli-error.js";
import { down, servicesStatus, type UpInput, up } from "./lifecycle.js";
import type { Output } from "./output.js";
import { isRunning, type RecordedService, readServicesFile, type ServiceLaunch, type ServicesFile, stopServices, writeServicesFile } from "./supervisor.js";

class Capture implements Output {
  text = "";
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/** A plain-node stand-in for the gateway: GET /healthz on the port given as its argument. */
const HTTP_SERVICE = `
const http = require("node:http");
const server = http.createServer((req, res) => { res.statusCode = req.url === "/healthz" ? 200 : 404; res.end(); });
server.listen(Number(process.argv[1]), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function recorded(name: string, pid: number, port: number): RecordedService {
  return { name, pid, startTicks: null, host: "127.0.0.1", port, metricsPort: null, argv: [], log: "", startedAtMs: 0 };
}

/** A pid that no process has any more. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(child.stdout.toString());
}

describe("clipper up and down", () => {
  let workDir: string;
  const leftovers: ServicesFile[] = [];

  beforeAll(() => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-cli-lifecycle-"));
  });

  afterAll(async () => {
    for (const file of leftovers) await stopServices(file, { graceMs: 1000 });
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  function input(dataDir: string, launches: ServiceLaunch[]): UpInput {
    return { dataDir, host: "127.0.0.1", launches, healthTimeoutMs: 10_000, portFlags: { gateway: "--gateway-port" } };
  }

  async function gatewayLaunch(port?: number): Promise<ServiceLaunch> {
    const p = port ?? (await freePort());
    return {
      name: "gateway",
      argv: [process.execPath, "-e", HTTP_SERVICE, String(p)],
      cwd: workDir,
      env: {},
      port: p,
      metricsPort: null,
      health: { kind: "http", path: "/healthz" },
    };
  }

  it("starts, reports and stops a service, leaving no process and no services.json", async () => {
    const dataDir = path.join(workDir, "full");
    const launch = await gatewayLaunch();
    const out = new Capture();
    const file = await up(input(dataDir, [launch]), out);
    expect(file).toBeDefined();
    if (file === undefined) return;
    leftovers.push(file);
    expect(out.text).toContain("gateway is healthy\n");
    expect(out.text).toContain(`clipper is up (data dir ${dataDir}, logs in ${dataDir}/logs)\n`);
    expect(out.text).toContain(`  REST:  POST http://127.0.0.1:${launch.port}/<application>/predict`);
    expect(out.text).toContain(`  gRPC:  127.0.0.1:${launch.port}`);

    const status = new Capture();
    expect(servicesStatus(dataDir, status)).toBe(true);
    expect(status.text).toMatch(new RegExp(`gateway {2}up {5}${file.services[0]?.pid} +127\\.0\\.0\\.1:${launch.port}`));

    const again = new Capture();
    expect(await up(input(dataDir, [launch]), again)).toBeUndefined();
    expect(again.text).toMatch(/^clipper is already running/);

    const stopped = new Capture();
    await down(dataDir, stopped);
    expect(stopped.text).toMatch(/^stopping gateway \(pid \d+\)\nclipper is down\n$/);
    expect(readServicesFile(dataDir)).toBeUndefined();
    for (const s of file.services) expect(isRunning(s)).toBe(false);

    const after = new Capture();
    await down(dataDir, after);
    expect(after.text).toMatch(/^clipper is not running/);
  });

  it("refuses to start over a half-running earlier start", async () => {
    const dataDir = path.join(workDir, "partial");
    writeServicesFile({ version: 1, dataDir, host: "127.0.0.1", services: [recorded("registry", process.pid, 1), recorded("router", deadPid(), 2)] });
    const err = await up(input(dataDir, []), new Capture()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).message).toBe("some services from an earlier `clipper up` still run (registry) but others exited; run `clipper down` first");
  });

  it("replaces a stale services.json whose processes are all gone", async () => {
    const dataDir = path.join(workDir, "stale");
    writeServicesFile({ version: 1, dataDir, host: "127.0.0.1", services: [recorded("gateway", deadPid(), 1)] });
    const launch = await gatewayLaunch();
    const file = await up(input(dataDir, [launch]), new Capture());
    if (file !== undefined) leftovers.push(file);
    expect(readServicesFile(dataDir)?.services.map((s) => s.port)).toEqual([launch.port]);
    await down(dataDir, new Capture());
  });

  it("names the flag to change when a port is taken", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const err = await up(input(path.join(workDir, "busy"), [await gatewayLaunch(port)]), new Capture()).catch((e: unknown) => e);
      expect((err as CliError).message).toBe(
        `gateway: port ${port} on 127.0.0.1 is already in use by another process; stop it or pick another port with --gateway-port`,
      );
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it("shows the failed service's log lines", async () => {
    const dataDir = path.join(workDir, "crash");
    const port = await freePort();
    const crashing: ServiceLaunch = {
      name: "registry",
      argv: [process.execPath, "-e", "console.error('registry: invalid --store=\"nope\"'); process.exit(2)"],
      cwd: workDir,
      env: {},
      port,
      metricsPort: null,
      health: { kind: "grpc" },
    };
    const err = (await up(input(dataDir, [crashing]), new Capture()).catch((e: unknown) => e)) as CliError;
    expect(err).toBeInstanceOf(CliError);
    expect(err.message).toContain("registry failed to start: exited with code 2\n");
    expect(err.message).toContain(`last lines of ${path.join(dataDir, "logs", "registry.log")}:\n`);
    expect(err.message).toContain('  registry: invalid --store="nope"\n');
    expect(readServicesFile(dataDir)).toBeUndefined();
  });
});
