// Crashes that heal by themselves under `clipper up`: the supervisor restarts a
// SIGKILLed service alone (the others keep their processes, the container-
// manager its replicas), a restarted container-manager adopts the replicas that
// outlived it, the gateway uses a restarted registry again within a second or
// two, and `clipper down` leaves no process behind whatever died first.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { processStartTime } from "../../services/container-manager/index.js";
import { createGrpcTransport, type GrpcTransport } from "../../services/shared/index.js";
import { repoRoot, waitFor } from "../system.js";
import { ClosedLoopLoad, faultyModel, restQuery } from "./load.js";

const run = promisify(execFile);
const cli = join(repoRoot, "cli", "clipper.mjs");

async function isFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Three service ports (router in the gateway) whose metrics ports (port + 8000) are free too. */
async function freeServicePorts(): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < 3) {
    const p = 20_000 + Math.floor(Math.random() * 30_000);
    if (!ports.includes(p) && (await isFree(p)) && (await isFree(p + 8000))) ports.push(p);
  }
  return ports;
}

interface Recorded {
  services: Array<{ name: string; pid: number; port: number; restarts?: number; lastExit?: string }>;
  supervisor?: { pid: number };
}

describe("self-healing under clipper up", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "clipper-heal-"));
  const transports: GrpcTransport[] = [];
  let gateway = "";
  let registry = "";
  let containerManager = "";
  let replicaPid = 0;
  const clipper = (...args: string[]) => run(process.execPath, [cli, ...args, "--data-dir", dataDir], { cwd: repoRoot, timeout: 120_000 });
  const client = <S extends typeof ManagementService | typeof ContainerManagerService>(service: S, address: string) => {
    const t = createGrpcTransport({ address });
    transports.push(t);
    return createClient(service, t);
  };
  const recorded = async (): Promise<Recorded> => JSON.parse(readFileSync(join(dataDir, "run", "services.json"), "utf8")) as Recorded;
  const service = async (name: string) => {
    const s = (await recorded()).services.find((x) => x.name === name);
    if (s === undefined) throw new Error(`${name} not recorded`);
    return s;
  };
  const answer = async (app = "pid-app") => {
    const r = await restQuery(`${gateway}/${app}/predict`, { input: [1] }, 2000);
    return r.status === 200 && !r.isDefault ? r : undefined;
  };

  beforeAll(async () => {
    const [g, r, c] = await freeServicePorts();
    gateway = `http://127.0.0.1:${g}`;
    registry = `127.0.0.1:${r}`;
    containerManager = `127.0.0.1:${c}`;
    await clipper("up", "--gateway-port", String(g), "--registry-port", String(r), "--container-manager-port", String(c));
    const mgmt = client(ManagementService, registry);
    await mgmt.createApplication({ name: "pid-app", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 1_000_000n });
    for await (const _ of client(ContainerManagerService, containerManager).deployModel({
      model: faultyModel("pid-model", "pid"),
      setCurrent: true,
      timeoutSeconds: 60,
    })) {
      // until READY
    }
    await mgmt.linkModel({ application: "pid-app", modelName: "pid-model" });
    replicaPid = Number((await waitFor("pid-app answering", () => answer())).output);
  }, 120_000);

  afterAll(async () => {
    for (const t of transports) t.close();
    await clipper("down").catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }, 90_000);

  it("the gateway SIGKILLed: the supervisor restarts it alone; the other services and the replica keep their processes", async () => {
    const before = await recorded();
    const killed = await service("gateway");
    const killedAt = performance.now();
    process.kill(killed.pid, "SIGKILL");
    const back = await waitFor("answers through a new gateway", async () => ((await service("gateway")).pid !== killed.pid ? answer() : undefined), 30_000);
    const recoveredMs = performance.now() - killedAt;
    expect(Number(back.output)).toBe(replicaPid);
    const after = await recorded();
    for (const name of ["registry", "container-manager"]) {
      expect(after.services.find((s) => s.name === name)?.pid).toBe(before.services.find((s) => s.name === name)?.pid);
    }
    expect(after.services.find((s) => s.name === "gateway")?.restarts).toBe(1);
    const status = await clipper("status");
    expect(status.stdout).toMatch(/SERVICE +STATE +PID +ADDRESS +METRICS +RESTARTS\n/);
    expect(status.stdout).toMatch(/ {2}gateway +up +\d+ +127\.0\.0\.1:\d+ +\d+ +1\n/);
    expect(status.stdout).toMatch(/supervisor: up \(pid \d+\)/);
    console.log(`gateway SIGKILLed: model answers again after ${Math.round(recoveredMs)} ms`);
  }, 60_000);

  it("the container-manager SIGKILLed, then `clipper restart container-manager`: the replica is adopted both times, and no query gets a default", async () => {
    const load = new ClosedLoopLoad(() => restQuery(`${gateway}/pid-app/predict`, { input: [1] }, 5000), 4);
    try {
      await waitFor("load running", () => (load.outcomes.length > 20 ? true : undefined));
      const killed = await service("container-manager");
      process.kill(killed.pid, "SIGKILL");
      const manager = client(ContainerManagerService, containerManager);
      const adopted = await waitFor(
        "a new container-manager with the replica",
        async () => {
          if ((await service("container-manager")).pid === killed.pid) return undefined;
          const [r] = (await manager.listModelReplicas({ modelName: "pid-model" })).replicas;
          return r?.state === ReplicaState.READY ? r : undefined;
        },
        30_000,
      );
      expect(adopted.message).toMatch(/^adopted from a previous container-manager/);
      const restart = await clipper("restart", "container-manager");
      expect(restart.stdout).toMatch(/^stopping container-manager \(pid \d+\)\nstarting container-manager\ncontainer-manager restarted \(pid \d+\)\n$/);
      const [handedOver] = (await manager.listModelReplicas({ modelName: "pid-model" })).replicas;
      expect(handedOver).toMatchObject({ id: adopted.id, endpoint: adopted.endpoint, state: ReplicaState.READY });
      const at = load.outcomes.length;
      await waitFor("answers after the restarts", () => (load.since(at).length >= 20 ? true : undefined));
    } finally {
      await load.stop();
    }
    expect(load.outcomes.filter((o) => o.status !== 200 || o.isDefault)).toEqual([]);
    expect(new Set(load.outcomes.map((o) => Number(o.output)))).toEqual(new Set([replicaPid]));
    expect((await service("container-manager")).restarts).toBe(2);
  }, 90_000);

  it("the registry SIGKILLed: the supervisor restarts it and the gateway serves a change made after it within 3 s", async () => {
    const killed = await service("registry");
    process.kill(killed.pid, "SIGKILL");
    const mgmt = client(ManagementService, registry);
    await waitFor(
      "a new registry",
      async () => ((await service("registry")).pid !== killed.pid ? mgmt.getApplication({ name: "pid-app" }) : undefined),
      30_000,
    );
    const changedAt = performance.now();
    await mgmt.createApplication({ name: "after-registry-restart", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 1_000_000n });
    await mgmt.linkModel({ application: "after-registry-restart", modelName: "pid-model" });
    await waitFor("the new application served", () => answer("after-registry-restart"), 10_000);
    const servedMs = performance.now() - changedAt;
    console.log(`registry SIGKILLed: a change made once it was back was served by the gateway after ${Math.round(servedMs)} ms`);
    expect(servedMs).toBeLessThan(3000);
    // Throughout, the replica answered: the registry's restart reached no model.
    expect(Number((await answer())?.output)).toBe(replicaPid);
  }, 60_000);

  it("`clipper down` after the supervisor and the container-manager were SIGKILLed leaves no process behind, the replica included", async () => {
    const before = await recorded();
    if (before.supervisor !== undefined) process.kill(before.supervisor.pid, "SIGKILL");
    const manager = await service("container-manager");
    process.kill(manager.pid, "SIGKILL");
    await waitFor("the container-manager gone", () => (processStartTime(manager.pid) === undefined ? true : undefined));
    // The replica outlives its manager (its own process group) and still listens.
    expect(processStartTime(replicaPid)).toBeDefined();
    const down = await clipper("down");
    expect(down.stdout).toContain(`stopped 1 model replica process a container-manager had left running (pid ${replicaPid})`);
    expect(down.stdout).toMatch(/clipper is down\n$/);
    expect(processStartTime(replicaPid)).toBeUndefined();
    for (const s of before.services) {
      expect(processStartTime(s.pid), `${s.name} (pid ${s.pid})`).toBeUndefined();
      expect(await isFree(s.port)).toBe(true);
    }
  }, 60_000);
});
