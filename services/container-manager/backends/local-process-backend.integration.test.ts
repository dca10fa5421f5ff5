import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { createLogger } from "../../shared/index.js";
import { LocalProcessBackend } from "./local-process-backend.js";
import { ProcessLedger, processStartTime } from "./process-ledger.js";
import type { ReplicaSpec } from "./replica-backend.js";

const repoRoot = path.resolve(import.meta.dirname, "..", "..", "..");

/** A replica: grpc.health SERVING on CLIPPER_MODEL_PORT; says so on stdout, and answers SIGHUP on stderr. */
const standIn = `
import { startGrpcServer } from ${JSON.stringify(path.join(repoRoot, "services/shared/index.ts"))};
const server = await startGrpcServer({ port: Number(process.env.CLIPPER_MODEL_PORT), services: [] });
console.log("replica up on", server.address);
process.on("SIGHUP", () => console.error("got SIGHUP"));
process.on("SIGTERM", () => void server.close(100).then(() => process.exit(0)));
`;

describe("LocalProcessBackend: replicas that outlive their manager", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-adopt-"));
  const script = path.join(dataDir, "stand-in.mts");
  const logger = createLogger({ service: "adopt-test", level: "silent" });
  const backends: LocalProcessBackend[] = [];
  const pids = new Set<number>();

  const backend = () => {
    const b = new LocalProcessBackend({
      paths: { repoRoot, dataDir, python: "python3", node: process.execPath },
      logger,
      healthIntervalMs: 100,
      stopGraceMs: 1000,
      restartPolicy: { initialDelayMs: 100, maxDelayMs: 1000, stableAfterMs: 60_000, maxStartFailures: 3 },
    });
    backends.push(b);
    return b;
  };
  const spec = (modelName: string): ReplicaSpec => ({
    modelName,
    modelVersion: "1",
    inputType: InputType.DOUBLES,
    runtime: create(ModelRuntimeSchema, {
      kind: { case: "command", value: { argv: [process.execPath, "--import", "tsx", script], env: {}, workingDir: repoRoot } },
    }),
  });
  const until = async <T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const ready = (b: LocalProcessBackend, id: string) =>
    until(`replica ${id} ready`, () => {
      const r = b.replicas().find((x) => x.id === id);
      const pid = b.pid(id);
      if (pid !== undefined) pids.add(pid);
      return r?.state === ReplicaState.READY && pid !== undefined ? { replica: r, pid } : undefined;
    });
  const logText = (b: LocalProcessBackend, id: string) => (b.logs(id, 1000) ?? []).map((l) => `${l.stream} ${l.text}`);

  beforeAll(() => {
    fs.writeFileSync(script, standIn);
  });

  afterAll(async () => {
    for (const b of backends) await b.close();
    for (const pid of pids) if (processStartTime(pid) !== undefined) process.kill(-pid, "SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("adopts a healthy replica as it is: same id, endpoint, process and log, output written meanwhile included", async () => {
    const first = backend();
    const started = first.start(spec("kept"));
    const { replica, pid } = await ready(first, started.id);
    await until("its first output", () => (logText(first, started.id).includes(`stdout replica up on ${replica.endpoint}`) ? true : undefined));
    // The manager goes away without stopping it (as a killed one would; release() also leaves the ledger as it is).
    await first.release();
    expect(processStartTime(pid)).toBeDefined();
    // Written while no manager runs: to its output file, not to a dead pipe.
    process.kill(pid, "SIGHUP");

    const second = backend();
    const result = await second.adoptLeftoverReplicas();
    expect(result).toEqual({ adopted: [started.id], stopped: [] });
    const [adopted] = second.replicas();
    expect(adopted).toMatchObject({ id: started.id, endpoint: replica.endpoint, state: ReplicaState.READY, restarts: 0 });
    expect(second.pid(started.id)).toBe(pid);
    await until("the output written between the managers", () => (logText(second, started.id).includes("stderr got SIGHUP") ? true : undefined));
    const lines = logText(second, started.id);
    // The earlier history is still there, and nothing is repeated.
    expect(lines.filter((l) => l.startsWith("stdout replica up on"))).toHaveLength(1);
    expect(lines.filter((l) => l === "stderr got SIGHUP")).toHaveLength(1);
    expect(lines.some((l) => /^manager adopted by container-manager pid \d+: process \d+ on 127\.0\.0\.1:\d+ still runs and is healthy$/.test(l))).toBe(true);

    // From then on it is managed like any replica: a crash restarts it.
    process.kill(pid, "SIGKILL");
    const restarted = await until("the adopted replica restarted", () => {
      const r = second.replicas()[0];
      return r?.restarts === 1 && r.state === ReplicaState.READY ? r : undefined;
    });
    expect(restarted.id).toBe(started.id);
    expect(second.pid(started.id)).not.toBe(pid);
    expect(logText(second, started.id).some((l) => l.includes("exited (its exit status is unknown: it was adopted from a previous container-manager)"))).toBe(
      true,
    );
    const newPid = second.pid(started.id) as number;
    pids.add(newPid);
    await second.close();
    expect(processStartTime(newPid)).toBeUndefined();
    expect(JSON.parse(fs.readFileSync(path.join(dataDir, "run", "replica-processes.json"), "utf8"))).toEqual({});
    expect(fs.readdirSync(path.join(dataDir, "logs")).filter((f) => f.startsWith(`kept-1-${started.id}`))).toEqual([`kept-1-${started.id}.log`]);
  });

  it("a released replica is left alone: a health check in flight at the handover does not go on checking (and killing) it", async () => {
    const first = backend();
    const started = first.start(spec("handed-over"));
    const { pid } = await ready(first, started.id);
    // Stopped, its next health check hangs until its timeout (1 s): the handover comes while that check is in flight.
    process.kill(pid, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 300));
    await first.release();
    // A manager that kept checking would count failures (100 ms apart) and SIGKILL it after 10 of them.
    await new Promise((r) => setTimeout(r, 3000));
    expect(processStartTime(pid)).toBeDefined();
    process.kill(pid, "SIGCONT");
    const second = backend();
    expect(await second.adoptLeftoverReplicas()).toEqual({ adopted: [started.id], stopped: [] });
    await second.close();
    expect(processStartTime(pid)).toBeUndefined();
  });

  it("stops the recorded processes that do not answer their health check, and those it cannot adopt", async () => {
    const first = backend();
    const healthy = first.start(spec("healthy"));
    const hung = first.start(spec("hung"));
    await ready(first, healthy.id);
    await ready(first, hung.id);
    await first.release();
    // The processes as the ledger has them at the handover (on a loaded machine the first manager may
    // have restarted one after it was first ready).
    const handedOver = JSON.parse(fs.readFileSync(path.join(dataDir, "run", "replica-processes.json"), "utf8")) as Record<string, { pid: number }>;
    const healthyPid = handedOver[healthy.id]?.pid as number;
    const hungPid = handedOver[hung.id]?.pid as number;
    // Alive but answering nothing.
    process.kill(hungPid, "SIGSTOP");
    // Recorded by a manager from before replicas could be adopted: only a pid.
    const old = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    const oldPid = old.pid as number;
    pids.add(oldPid);
    const ledgerFile = path.join(dataDir, "run", "replica-processes.json");
    const recorded = JSON.parse(fs.readFileSync(ledgerFile, "utf8")) as Record<string, unknown>;
    const scratch = new ProcessLedger(path.join(dataDir, "scratch.json"));
    scratch.record("old", oldPid);
    fs.writeFileSync(ledgerFile, JSON.stringify({ ...recorded, ...JSON.parse(fs.readFileSync(path.join(dataDir, "scratch.json"), "utf8")) }));

    const second = backend();
    const result = await second.adoptLeftoverReplicas();
    expect(result.adopted).toEqual([healthy.id]);
    expect(result.stopped.sort()).toEqual([hungPid, oldPid].sort());
    expect(processStartTime(hungPid)).toBeUndefined();
    expect(processStartTime(oldPid)).toBeUndefined();
    expect(second.pid(healthy.id)).toBe(healthyPid);
    expect(Object.keys(JSON.parse(fs.readFileSync(ledgerFile, "utf8")))).toEqual([healthy.id]);
    await second.close();
    expect(processStartTime(healthyPid)).toBeUndefined();
  });
});
