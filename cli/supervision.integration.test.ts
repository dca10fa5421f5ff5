import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processStartTime } from "../services/container-manager/index.js";
import { CliError } from "./cli-error.js";
import { down, restartService, servicesStatus, up } from "./lifecycle.js";
import type { Output } from "./output.js";
import { isPortFree, isRunning, type RecordedService, readServicesFile, type ServiceLaunch } from "./supervisor.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

class Capture implements Output {
  text = "";
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/** Plain-node stand-ins: GET /healthz on the port given (the gateway's probe), or grpc.health (the others'). */
const HTTP_SERVICE = `
const http = require("node:http");
const server = http.createServer((req, res) => { res.statusCode = req.url === "/healthz" ? 200 : 404; res.end(); });
server.listen(Number(process.argv[1]), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;
const GRPC_SERVICE = `
import { startGrpcServer } from ${JSON.stringify(path.join(repoRoot, "services/shared/index.ts"))};
const server = await startGrpcServer({ port: Number(process.argv[2]), services: [] });
process.on("SIGTERM", () => void server.close(100).then(() => process.exit(0)));
`;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe("the supervisor `clipper up` leaves", () => {
  let workDir: string;
  let grpcScript: string;
  const dataDirs: string[] = [];

  beforeAll(() => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-cli-supervision-"));
    grpcScript = path.join(workDir, "grpc-service.mts");
    fs.writeFileSync(grpcScript, GRPC_SERVICE);
  });

  afterAll(async () => {
    // Whatever a failed assertion left behind: down stops the supervisor first, then the services.
    for (const dir of dataDirs) await down(dir, new Capture()).catch(() => undefined);
    fs.rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  async function launches(): Promise<ServiceLaunch[]> {
    const registryPort = await freePort();
    const gatewayPort = await freePort();
    return [
      {
        name: "registry",
        argv: [process.execPath, "--import", "tsx", grpcScript, String(registryPort)],
        cwd: repoRoot,
        env: {},
        port: registryPort,
        metricsPort: null,
        health: { kind: "grpc" },
      },
      {
        name: "gateway",
        argv: [process.execPath, "-e", HTTP_SERVICE, String(gatewayPort)],
        cwd: workDir,
        env: {},
        port: gatewayPort,
        metricsPort: null,
        health: { kind: "http", path: "/healthz" },
      },
    ];
  }

  async function started(name: string) {
    const dataDir = path.join(workDir, name);
    dataDirs.push(dataDir);
    const out = new Capture();
    const file = await up({ dataDir, host: "127.0.0.1", launches: await launches(), healthTimeoutMs: 20_000, portFlags: {} }, out);
    expect(file?.supervisor).toBeDefined();
    return { dataDir, out, file: file as NonNullable<typeof file> };
  }

  const service = (dataDir: string, name: string) => readServicesFile(dataDir)?.services.find((s) => s.name === name) as RecordedService;
  const restartedFrom = (dataDir: string, name: string, pid: number) =>
    until(`${name} restarted`, async () => {
      const s = service(dataDir, name);
      return s.pid !== pid && isRunning(s) && !(await isPortFree("127.0.0.1", s.port)) && s.nextStartAtMs === undefined ? s : undefined;
    });

  it("restarts a service that exits, alone, after a backoff that doubles, and `clipper status` shows it", async () => {
    const { dataDir, out, file } = await started("restarts");
    expect(out.text).toMatch(/a service that exits is restarted by the supervisor \(pid \d+, log .*supervisor\.log\)\n/);
    const registry = service(dataDir, "registry");
    const first = service(dataDir, "gateway");

    process.kill(first.pid, "SIGKILL");
    const second = await restartedFrom(dataDir, "gateway", first.pid);
    expect(second.restarts).toBe(1);
    expect(second.lastExit).toBe("exited");
    // Nothing else was touched.
    expect(service(dataDir, "registry").pid).toBe(registry.pid);
    expect(isRunning(registry)).toBe(true);

    // Again at once: twice the delay (0.5 s, then 1 s), and this time the supervisor's own child says how it ended.
    const crashedAt = Date.now();
    process.kill(second.pid, "SIGKILL");
    const waiting = await until("the second restart scheduled", () => {
      const s = service(dataDir, "gateway");
      return s.nextStartAtMs !== undefined && s.lastExitAtMs !== undefined && s.lastExitAtMs >= crashedAt - 1000 ? s : undefined;
    });
    expect((waiting.nextStartAtMs ?? 0) - (waiting.lastExitAtMs ?? 0)).toBe(1000);
    expect(waiting.lastExit).toBe("killed by SIGKILL");
    const status = new Capture();
    servicesStatus(dataDir, status);
    expect(status.text).toMatch(/gateway: last exit .* ago: killed by SIGKILL; starting again in /);
    const third = await restartedFrom(dataDir, "gateway", second.pid);
    expect(Date.now() - crashedAt).toBeGreaterThanOrEqual(1000);
    expect(third.restarts).toBe(2);

    const after = new Capture();
    servicesStatus(dataDir, after);
    expect(after.text).toMatch(/SERVICE +STATE +PID +ADDRESS +METRICS +RESTARTS\n/);
    expect(after.text).toMatch(new RegExp(`gateway +up +${third.pid} +127\\.0\\.0\\.1:${third.port} +${third.port} +2\\n`));
    expect(after.text).toMatch(new RegExp(`registry +up +${registry.pid} .* 0\\n`));
    expect(after.text).toContain(`supervisor: up (pid ${file.supervisor?.pid})`);

    const stopped = new Capture();
    await down(dataDir, stopped);
    expect(stopped.text).toMatch(/^stopping gateway \(pid \d+\)\nstopping registry \(pid \d+\)\nclipper is down\n$/);
    for (const s of [registry, third]) expect(isRunning(s)).toBe(false);
    expect(isRunning(file.supervisor ?? { pid: 0, startTicks: null })).toBe(false);
  }, 60_000);

  it("`clipper restart SERVICE` restarts one service through the supervisor, or by itself when none runs", async () => {
    const { dataDir, file } = await started("restart-command");
    const registry = service(dataDir, "registry");
    const gateway = service(dataDir, "gateway");

    const out = new Capture();
    await restartService(dataDir, "registry", out);
    const restarted = service(dataDir, "registry");
    expect(out.text).toBe(`stopping registry (pid ${registry.pid})\nstarting registry\nregistry restarted (pid ${restarted.pid})\n`);
    expect(restarted).toMatchObject({ restarts: 1, lastExit: "restarted on request" });
    expect(isRunning(registry)).toBe(false);
    expect(isRunning(restarted)).toBe(true);
    expect(service(dataDir, "gateway").pid).toBe(gateway.pid);

    const unknown = await restartService(dataDir, "nope", new Capture()).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(CliError);
    expect((unknown as CliError).message).toBe('no service "nope" was started by `clipper up` here; the services are registry, gateway');

    // Without a supervisor the command does it itself.
    process.kill(file.supervisor?.pid ?? 0, "SIGKILL");
    await until("the supervisor gone", () => (isRunning(file.supervisor ?? { pid: 0, startTicks: null }) ? undefined : true));
    const alone = new Capture();
    await restartService(dataDir, "gateway", alone);
    expect(alone.text).toMatch(/^\(no supervisor runs: restarting it from here; `clipper up` starts a supervisor\)\nstopping gateway/);
    expect(service(dataDir, "gateway")).toMatchObject({ restarts: 1 });
    await down(dataDir, new Capture());
  }, 60_000);

  it("`clipper up` over services whose supervisor died starts a new one, which restarts the service that exited meanwhile", async () => {
    const { dataDir, file } = await started("new-supervisor");
    process.kill(file.supervisor?.pid ?? 0, "SIGKILL");
    await until("the supervisor gone", () => (isRunning(file.supervisor ?? { pid: 0, startTicks: null }) ? undefined : true));
    const gateway = service(dataDir, "gateway");
    process.kill(gateway.pid, "SIGKILL");
    await until("the gateway gone", () => (isRunning(gateway) ? undefined : true));
    // Nothing restarts it now.
    await sleep(1000);
    expect(service(dataDir, "gateway").pid).toBe(gateway.pid);
    const status = new Capture();
    servicesStatus(dataDir, status);
    expect(status.text).toContain("supervisor: down: a service that exits stays down; `clipper up` starts a supervisor again");

    const again = new Capture();
    expect(await up({ dataDir, host: "127.0.0.1", launches: [], healthTimeoutMs: 20_000, portFlags: {} }, again)).toBeUndefined();
    expect(again.text).toMatch(
      /^clipper is already running \(data dir .*\)\n {2}its supervisor had exited: started a new one \(pid \d+\), which restarts gateway\n/,
    );
    const restarted = await restartedFrom(dataDir, "gateway", gateway.pid);
    expect(restarted.restarts).toBe(1);
    await down(dataDir, new Capture());
  }, 60_000);

  it("`clipper down` leaves no process behind: not one the supervisor was about to restart, nor a replica a dead container-manager left", async () => {
    const { dataDir, file } = await started("down");
    // A model replica whose container-manager was killed: in its own process group, named only by the ledger.
    const replica = spawn("sleep", ["60"], { detached: true, stdio: "ignore" });
    const replicaPid = replica.pid as number;
    replica.unref();
    fs.writeFileSync(
      path.join(dataDir, "run", "replica-processes.json"),
      JSON.stringify({ abcd1234: { pid: replicaPid, startTime: processStartTime(replicaPid) } }),
    );
    // The gateway crashes: the supervisor waits out its backoff to start it again, and `down` comes meanwhile.
    const gateway = service(dataDir, "gateway");
    process.kill(gateway.pid, "SIGKILL");
    await until("the restart scheduled", () => (service(dataDir, "gateway").nextStartAtMs !== undefined ? true : undefined));
    const out = new Capture();
    await down(dataDir, out);
    expect(out.text).toMatch(
      new RegExp(
        `^stopping registry \\(pid \\d+\\)\\nstopped 1 model replica process a container-manager had left running \\(pid ${replicaPid}\\)\\nclipper is down\\n$`,
      ),
    );
    expect(processStartTime(replicaPid)).toBeUndefined();
    expect(isRunning(file.supervisor ?? { pid: 0, startTicks: null })).toBe(false);
    // Nothing comes back later either.
    await sleep(1500);
    expect(await isPortFree("127.0.0.1", gateway.port)).toBe(true);
    expect(readServicesFile(dataDir)).toBeUndefined();
    expect(fs.existsSync(path.join(dataDir, "run", "supervisor.sock"))).toBe(false);

    // With nothing recorded, down still stops what the ledger names.
    const orphan = spawn("sleep", ["60"], { detached: true, stdio: "ignore" });
    orphan.unref();
    const orphanPid = orphan.pid as number;
    fs.writeFileSync(
      path.join(dataDir, "run", "replica-processes.json"),
      JSON.stringify({ ef567890: { pid: orphanPid, startTime: processStartTime(orphanPid) } }),
    );
    const nothing = new Capture();
    await down(dataDir, nothing);
    expect(nothing.text).toMatch(/^clipper is not running \(no .*services\.json\)\nstopped 1 model replica process a container-manager had left running/);
    expect(processStartTime(orphanPid)).toBeUndefined();
  }, 60_000);
});
