// Service faults and overload: the router killed and restarted, the container-
// manager killed and restarted (it adopts the replicas that outlived it), the
// registry stopped and restarted, and a burst of ten times the gateway's capacity.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { processStartTime } from "../../services/container-manager/index.js";
import { TestSystem, waitFor } from "../system.js";
import { ClosedLoopLoad, deployApp, type Outcome, restQuery } from "./load.js";

/** The gateway's bound on queries in flight: its capacity, as far as load shedding is concerned. */
const MAX_IN_FLIGHT = 32;
const HANG_BOUND_MS = 5000;

describe("service faults and overload", () => {
  const system = new TestSystem({ args: { gateway: ["--max-in-flight", String(MAX_IN_FLIGHT)] } });
  const url = (app: string) => `${system.gatewayUrl}/${app}/predict`;
  const predicted = async (app: string, input: number[] = [1, 2]) => {
    const r = await restQuery(url(app), { input });
    return r.status === 200 && !r.isDefault ? r : undefined;
  };
  const noHangs = (outcomes: Outcome[]) => {
    expect(outcomes.filter((o) => o.status === 0)).toEqual([]);
    expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(HANG_BOUND_MS);
  };

  beforeAll(async () => {
    await system.start();
    await deployApp(system, "busy-app", "busy");
    await waitFor("busy-app answering", () => predicted("busy-app"));
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("the router killed and restarted under load: explicit 503s in the gap, never a hang, the gateway reconnects by itself", async () => {
    const load = new ClosedLoopLoad(() => restQuery(url("busy-app"), { input: [1, 2] }), 4);
    try {
      await waitFor("load running", () => (load.outcomes.length > 20 ? true : undefined));
      const routerPort = await system.stopService("router", "SIGKILL");
      const killedAt = load.outcomes.length;
      await waitFor("queries refused while the router is down", () => (load.since(killedAt).some((o) => o.status === 503) ? true : undefined));
      // A change made while the router is away reaches it with its fresh snapshot.
      await system.management().createApplication({ name: "made-while-router-down", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 1_000_000n });
      await system.management().linkModel({ application: "made-while-router-down", modelName: "busy-app-model" });
      await system.startService("router", routerPort);
      const restartedAt = load.outcomes.length;
      await waitFor(
        "answers through the restarted router",
        () => (load.since(restartedAt).some((o) => o.status === 200 && !o.isDefault) ? true : undefined),
        30_000,
      );
    } finally {
      await load.stop();
    }
    noHangs(load.outcomes);
    const failures = load.outcomes.filter((o) => o.status !== 200);
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) {
      expect(f.status).toBe(503);
      expect(f.error).toMatch(/router|unavailable|configuration|connect/i);
    }
    expect((await predicted("made-while-router-down", [4, 4]))?.output).toBe(8);
  }, 90_000);

  it("the container-manager SIGKILLed and restarted under load: it adopts the healthy replica its predecessor left (not one default) and replaces a hung one", async () => {
    await deployApp(system, "pid-app", "pid");
    await deployApp(system, "stuck-app", "pid");
    const orphan = Number((await waitFor("pid-app answering", () => predicted("pid-app"))).output);
    const stuck = Number((await waitFor("stuck-app answering", () => predicted("stuck-app"))).output);
    const load = new ClosedLoopLoad(() => restQuery(url("pid-app"), { input: [1] }), 4);
    try {
      await waitFor("load running", () => (load.outcomes.length > 20 ? true : undefined));
      const port = await system.stopService("container-manager", "SIGKILL");
      // Replicas run in their own process groups: they outlive their manager.
      expect(processStartTime(orphan)).toBeDefined();
      // Alive but answering nothing: not to be adopted.
      process.kill(stuck, "SIGSTOP");
      await system.startService("container-manager", port);
      const adopted = await waitFor("the replica adopted", async () => {
        const [r] = (await system.containerManager().listModelReplicas({ modelName: "pid-app-model" })).replicas;
        return r?.state === ReplicaState.READY ? r : undefined;
      });
      expect(adopted.message).toMatch(/^adopted from a previous container-manager/);
      const restartedAt = load.outcomes.length;
      await waitFor("answers after the restart", () => (load.since(restartedAt).length >= 20 ? true : undefined));
    } finally {
      await load.stop();
    }
    // Every query before, during and after the restart was answered by the same replica process.
    expect(load.outcomes.filter((o) => o.status !== 200 || o.isDefault)).toEqual([]);
    expect(new Set(load.outcomes.map((o) => Number(o.output)))).toEqual(new Set([orphan]));
    // The hung one was stopped, and the reconciler started a fresh replica in its place.
    await waitFor("the hung replica stopped", () => (processStartTime(stuck) === undefined ? true : undefined), 30_000);
    const fresh = await waitFor(
      "answers from a new stuck-app replica",
      async () => {
        const r = await predicted("stuck-app");
        return r !== undefined && Number(r.output) !== stuck ? r : undefined;
      },
      60_000,
    );
    expect(processStartTime(Number(fresh.output))).toBeDefined();
  }, 120_000);

  it("the registry stopped: the system keeps serving its last configuration; the watches reconnect and later changes arrive", async () => {
    const load = new ClosedLoopLoad(() => restQuery(url("busy-app"), { input: [1, 1] }), 2);
    let registryPort = 0;
    try {
      registryPort = await system.stopService("registry");
      const stoppedAt = load.outcomes.length;
      await waitFor("answers while the registry is down", () => (load.since(stoppedAt).filter((o) => !o.isDefault).length >= 20 ? true : undefined));
      await system.startService("registry", registryPort);
    } finally {
      await load.stop();
    }
    expect(load.outcomes.filter((o) => o.status !== 200 || o.isDefault)).toEqual([]);
    // A change made after the restart reaches the gateway and the router over their reconnected watches.
    const mgmt = await waitFor("the registry back", async () => {
      const m = system.management();
      await m.getApplication({ name: "busy-app" });
      return m;
    });
    await mgmt.createApplication({ name: "made-after-registry-restart", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 1_000_000n });
    await mgmt.linkModel({ application: "made-after-registry-restart", modelName: "busy-app-model" });
    const answer = await waitFor("the new application served", () => predicted("made-after-registry-restart", [2, 5]), 30_000);
    expect(answer.output).toBe(7);
    await mgmt.updateApplication({ name: "made-after-registry-restart", defaultOutput: "changed" });
    await mgmt.unlinkModel({ application: "made-after-registry-restart", modelName: "busy-app-model" });
    const unlinked = await waitFor("the unlink applied by the router", async () => {
      const r = await restQuery(url("made-after-registry-restart"), { input: [1] });
      return r.isDefault ? r : undefined;
    });
    expect(unlinked).toMatchObject({ status: 200, output: "changed", explanation: "No connected models found for query" });
  }, 90_000);

  it("a burst of 10x capacity is shed explicitly (429 or default, never a hang), then answers return within seconds", async () => {
    const burst = new ClosedLoopLoad(() => restQuery(url("busy-app"), { input: [3, 4] }), 10 * MAX_IN_FLIGHT);
    await waitFor("the burst under way", () => (burst.outcomes.length >= 20 * MAX_IN_FLIGHT ? true : undefined), 60_000);
    const outcomes = await burst.stop();
    noHangs(outcomes);
    const shed = outcomes.filter((o) => o.status === 429);
    expect(shed.length).toBeGreaterThan(0);
    for (const o of shed) expect(o.error).toMatch(/--max-in-flight/);
    // Everything else got the model's answer or the application's default: nothing in between.
    for (const o of outcomes.filter((o) => o.status !== 429)) {
      expect(o.status).toBe(200);
      if (!o.isDefault) expect(o.output).toBe(7);
    }
    // Back to normal within 5 s: twenty queries in a row answered by the model.
    await waitFor(
      "twenty model answers in a row",
      async () => {
        for (let i = 0; i < 20; i++) if ((await predicted("busy-app", [3, 4])) === undefined) return undefined;
        return true;
      },
      5000,
    );
  }, 90_000);
});
