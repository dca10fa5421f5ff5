// Faulty model replicas: each failure stays with its own queries and replica,
// answers the right error or default, and the container-manager says what happened.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { TestSystem, waitFor } from "../system.js";
import { ClosedLoopLoad, deployApp, restQuery, sleep } from "./load.js";

const MEMORY_LIMIT_BYTES = 256 * 1_048_576;
/** Every app here has a 1 s SLO; the router answers the default by then. Anything much later is a hang. */
const SLO_MS = 1000;
const HANG_BOUND_MS = SLO_MS + 3000;

describe("model faults", () => {
  const system = new TestSystem({ args: { "container-manager": ["--replica-memory-limit-bytes", String(MEMORY_LIMIT_BYTES)] } });
  const url = (app: string) => `${system.gatewayUrl}/${app}/predict`;
  const predicted = async (app: string, input: number[]) => {
    const r = await restQuery(url(app), { input });
    return r.status === 200 && !r.isDefault ? r : undefined;
  };
  const replicas = async (app: string) => (await system.containerManager().listModelReplicas({ modelName: `${app}-model` })).replicas;

  beforeAll(async () => {
    await system.start();
    await Promise.all([
      deployApp(system, "pid-app", "pid", { replicas: 2 }),
      deployApp(system, "healthy-app", "busy"),
      deployApp(system, "hang-app", "hang"),
      deployApp(system, "count-app", "wrong-count"),
      deployApp(system, "crash-app", "crash-negative"),
      deployApp(system, "leak-app", "leak"),
    ]);
    for (const app of ["pid-app", "healthy-app", "crash-app", "leak-app"]) await waitFor(`${app} answering`, () => predicted(app, [1, 2]));
    // This model answers one output short, so a single query always gets the default; wait until it is the model's doing.
    await waitFor("count-app's model reached", async () =>
      (await restQuery(url("count-app"), { input: [1] })).explanation.includes("outputs for") ? true : undefined,
    );
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  /** The healthy application answers from its model while another one fails. */
  async function expectHealthyAppUnaffected(): Promise<void> {
    const r = await restQuery(url("healthy-app"), { input: [2, 3] });
    expect(r).toMatchObject({ status: 200, isDefault: false, output: 5 });
  }

  it("a replica killed with SIGKILL under load: answers or defaults, no hang, replaced, traffic returns", async () => {
    const load = new ClosedLoopLoad(() => restQuery(url("pid-app"), { input: [1] }), 8);
    try {
      const pids = await waitFor("answers from both replicas", () => {
        const seen = new Set(load.outcomes.filter((o) => !o.isDefault && o.status === 200).map((o) => Number(o.output)));
        return seen.size >= 2 ? [...seen] : undefined;
      });
      const victim = pids[0] ?? 0;
      const killedAt = load.outcomes.length;
      process.kill(victim, "SIGKILL");
      const replacement = await waitFor(
        "answers from a replacement replica",
        () => load.since(killedAt).find((o) => o.status === 200 && !o.isDefault && !pids.includes(Number(o.output)))?.output,
        60_000,
      );
      expect(Number(replacement)).not.toBe(victim);
      const afterReplacement = load.outcomes.length;
      await sleep(1000);
      // Traffic is spread over both replicas again: the survivor and the replacement.
      const recent = new Set(
        load
          .since(afterReplacement)
          .filter((o) => !o.isDefault)
          .map((o) => Number(o.output)),
      );
      expect(recent).toEqual(new Set([Number(replacement), ...pids.filter((p) => p !== victim)]));
    } finally {
      await load.stop();
    }
    const during = load.outcomes;
    // Every query got an HTTP answer: the model's or the default, within the SLO (plus slack); never a hang or an error.
    expect(during.filter((o) => o.status !== 200)).toEqual([]);
    expect(Math.max(...during.map((o) => o.ms))).toBeLessThan(HANG_BOUND_MS);
    for (const o of during.filter((o) => o.isDefault)) expect(o.explanation).toMatch(/replica|SLO|No ready replica/);
    expect((await replicas("pid-app")).some((r) => r.restarts >= 1 && /killed by signal SIGKILL/.test(r.message))).toBe(true);
  }, 90_000);

  it("a model that hangs forever: its queries get the SLO default in time, others are unaffected", async () => {
    const pending = Array.from({ length: 4 }, () => restQuery(url("hang-app"), { input: [1] }));
    await expectHealthyAppUnaffected();
    for (const r of await Promise.all(pending)) {
      expect(r).toMatchObject({ status: 200, isDefault: true, output: -1 });
      expect(r.explanation).toBe("Failed to retrieve a prediction response within the specified latency SLO");
      expect(r.ms).toBeLessThan(HANG_BOUND_MS);
    }
    // A hung Predict does not make the replica unhealthy: its health service still answers.
    expect((await replicas("hang-app")).map((r) => r.state)).toEqual([ReplicaState.READY]);
  });

  it("a model that returns the wrong number of outputs: its batch gets the default naming the mismatch", async () => {
    const res = await fetch(url("count-app"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input_batch: [[1], [2], [3]] }),
    });
    expect(res.status).toBe(200);
    const { batch_predictions: answers } = (await res.json()) as { batch_predictions: Array<{ default: boolean; default_explanation?: string }> };
    expect(answers).toHaveLength(3);
    for (const a of answers) expect(a).toMatchObject({ default: true, default_explanation: expect.stringMatching(/returned 2 outputs for 3 inputs/) });
    await expectHealthyAppUnaffected();
  });

  it("a model that crashes on some inputs: those queries get an explicit default, the replica restarts and says why", async () => {
    const crash = await restQuery(url("crash-app"), { input: [1, -1] });
    expect(crash).toMatchObject({ status: 200, isDefault: true, output: -1 });
    expect(crash.ms).toBeLessThan(HANG_BOUND_MS);
    await expectHealthyAppUnaffected();
    const back = await waitFor("crash-app answering again", () => predicted("crash-app", [1, 2]), 30_000);
    expect(back.output).toBe(3);
    const [replica] = await replicas("crash-app");
    expect(replica?.restarts).toBeGreaterThanOrEqual(1);
    expect(replica?.message).toMatch(/exited with code 3/);
  }, 60_000);

  it("a model whose memory grows without bound is killed at the memory limit, reported, and restarted", async () => {
    const leaking = new ClosedLoopLoad(() => restQuery(url("leak-app"), { input: [1] }), 2);
    let killed: Awaited<ReturnType<typeof replicas>>[number];
    try {
      killed = await waitFor(
        "the container-manager to report the memory limit",
        async () => (await replicas("leak-app")).find((r) => /exceeding the memory limit/.test(r.message)),
        60_000,
      );
      await expectHealthyAppUnaffected();
    } finally {
      await leaking.stop();
    }
    expect(killed.message).toMatch(/resident memory \d+ MiB > limit 256 MiB/);
    expect(leaking.outcomes.filter((o) => o.status !== 200)).toEqual([]);
    expect(Math.max(...leaking.outcomes.map((o) => o.ms))).toBeLessThan(HANG_BOUND_MS);
    await waitFor("leak-app answering again", () => predicted("leak-app", [2, 2]), 30_000);
    const logs = await system.containerManager().getLogs({ modelName: "leak-app-model", tailLines: 200 });
    expect(logs.logs.flatMap((l) => l.lines).join("\n")).toMatch(/exceeding the memory limit/);
  }, 90_000);
});
