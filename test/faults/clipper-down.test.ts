// `clipper down` during load: queries being answered finish (within a bound)
// and every acknowledged configuration change is there after `clipper up`.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { createGrpcTransport, type GrpcTransport } from "../../services/shared/index.js";
import { repoRoot, waitFor } from "../system.js";
import { ClosedLoopLoad, faultyModel, type Outcome, restQuery } from "./load.js";

const run = promisify(execFile);
const cli = join(repoRoot, "cli", "clipper.mjs");
/** clipper down gives each service 10 s; four services, plus slack. */
const DOWN_BOUND_MS = 45_000;

async function isFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Four service ports whose metrics ports (port + 8000, as `clipper up` assigns them) are free too. */
async function freeServicePorts(): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < 4) {
    const p = 20_000 + Math.floor(Math.random() * 30_000);
    if (!ports.includes(p) && (await isFree(p)) && (await isFree(p + 8000))) ports.push(p);
  }
  return ports;
}

describe("clipper down during load", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "clipper-down-"));
  const transports: GrpcTransport[] = [];
  let upArgs: string[] = [];
  let gateway = "";
  let registry = "";
  let containerManager = "";
  const clipper = (...args: string[]) => run(process.execPath, [cli, ...args, "--data-dir", dataDir], { cwd: repoRoot, timeout: 120_000 });
  const client = <S extends typeof ManagementService | typeof ContainerManagerService>(service: S, address: string) => {
    const t = createGrpcTransport({ address });
    transports.push(t);
    return createClient(service, t);
  };

  beforeAll(async () => {
    const [g, r, q, c] = await freeServicePorts();
    upArgs = ["up", "--gateway-port", String(g), "--registry-port", String(r), "--router-port", String(q), "--container-manager-port", String(c)];
    gateway = `http://127.0.0.1:${g}`;
    registry = `127.0.0.1:${r}`;
    containerManager = `127.0.0.1:${c}`;
    await clipper(...upArgs);
    const mgmt = client(ManagementService, registry);
    await mgmt.createApplication({ name: "slow-app", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n });
    for await (const _ of client(ContainerManagerService, containerManager).deployModel({
      model: faultyModel("slow-model", "slow 2000"),
      setCurrent: true,
      timeoutSeconds: 60,
    })) {
      // until READY
    }
    await mgmt.linkModel({ application: "slow-app", modelName: "slow-model" });
    await waitFor("slow-app answering", async () => ((await restQuery(`${gateway}/slow-app/predict`, { input: [1] })).isDefault === false ? true : undefined));
  }, 120_000);

  afterAll(async () => {
    for (const t of transports) t.close();
    await clipper("down").catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it("finishes the queries in flight, stops within a bound, and keeps every acknowledged change", async () => {
    const started: Array<{ at: number; outcome: Promise<Outcome> }> = [];
    const load = new ClosedLoopLoad(() => {
      const outcome = restQuery(`${gateway}/slow-app/predict`, { input: [2, 3] }, 20_000);
      started.push({ at: performance.now(), outcome });
      return outcome;
    }, 8);
    // Each query takes 2 s, longer than `clipper down` takes to reach the gateway: some are surely in flight then.
    await waitFor("load running", () => (load.outcomes.length >= 8 ? true : undefined));
    // Acknowledged just before `down`: it must survive.
    const mgmt = client(ManagementService, registry);
    await mgmt.createApplication({ name: "acked-before-down", inputType: InputType.DOUBLES, defaultOutput: "kept", sloMicros: 1_000_000n });
    await mgmt.updateApplication({ name: "slow-app", description: "updated before down" });
    const downAt = performance.now();
    const down = await clipper("down");
    const downMs = performance.now() - downAt;
    await load.stop();

    expect(down.stdout).toContain("clipper is down");
    expect(downMs).toBeLessThan(DOWN_BOUND_MS);
    // Every query already sent when `down` began got the model's answer: drained, not cut.
    const inFlight = await Promise.all(started.filter((s) => s.at < downAt).map((s) => s.outcome));
    expect(inFlight.length).toBeGreaterThanOrEqual(8);
    for (const o of inFlight) expect(o).toMatchObject({ status: 200, isDefault: false, output: 5 });
    // Queries sent afterwards were refused (connection refused or 503), never left hanging.
    expect(load.outcomes.filter((o) => o.error === "timeout")).toEqual([]);

    await clipper(...upArgs);
    const after = client(ManagementService, registry);
    const acked = await waitFor("the registry back", () => after.getApplication({ name: "acked-before-down" }));
    expect(acked.application?.defaultOutput).toBe("kept");
    expect((await after.getApplication({ name: "slow-app" })).application?.description).toBe("updated before down");
  }, 150_000);
});
