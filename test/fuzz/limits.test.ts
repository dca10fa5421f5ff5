// Every configurable limit (docs/limits.md), set small by flags on real
// services and tried at the bound (accepted) and just past it (refused, naming it).
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { rejection } from "../../services/shared/testing/rejection.js";
import { postJson, TestSystem } from "../system.js";

const MAX_BODY = 2048;
const MAX_BATCH = 4;
const MAX_INPUT = 8;
const MAX_POLICY_USERS = 5;
/** The smallest the flag takes: one state of the largest size (256 KiB). */
const MAX_POLICY_BYTES = 256 * 1024;

describe("limits at and just past each bound", () => {
  const system = new TestSystem({
    args: {
      gateway: ["--max-body-bytes", String(MAX_BODY)],
      router: ["--max-batch", String(MAX_BATCH), "--max-input-size", String(MAX_INPUT)],
      registry: [
        "--max-applications",
        "3",
        "--max-model-versions",
        "2",
        "--max-desired-replicas",
        "2",
        "--max-policy-users",
        String(MAX_POLICY_USERS),
        "--max-policy-state-bytes",
        String(MAX_POLICY_BYTES),
      ],
      "container-manager": ["--max-replicas", "2"],
    },
  });
  const predict = (app: string, body: unknown) => postJson(`${system.gatewayUrl}/${app}/predict`, body);

  beforeAll(async () => {
    await system.start();
    const mgmt = system.management();
    await mgmt.createApplication({ name: "nums", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 100_000n });
    await mgmt.createApplication({ name: "texts", inputType: InputType.STRINGS, defaultOutput: "-1", sloMicros: 100_000n });
    // The gateway learns applications over its watch.
    for (let i = 0; i < 100 && (await predict("texts", { input: "x" })).status === 404; i++) await new Promise((r) => setTimeout(r, 100));
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("gateway --max-body-bytes", async () => {
    const padded = (size: number) => {
      const base = JSON.stringify({ input: [1], uid: "" });
      return JSON.stringify({ input: [1], uid: "u".repeat(size - base.length) });
    };
    expect(Buffer.byteLength(padded(MAX_BODY))).toBe(MAX_BODY);
    expect((await predict("nums", padded(MAX_BODY))).status).toBe(200);
    const past = await predict("nums", padded(MAX_BODY + 1));
    expect(past.status).toBe(413);
    expect(past.json.cause).toMatch(new RegExp(`limit of ${MAX_BODY} bytes`));
  });

  it("router --max-batch", async () => {
    const batch = (n: number) => ({ input_batch: Array.from({ length: n }, () => [1]) });
    expect((await predict("nums", batch(MAX_BATCH))).status).toBe(200);
    const past = await predict("nums", batch(MAX_BATCH + 1));
    expect(past.status).toBe(400);
    expect(String(past.json.cause)).toMatch(new RegExp(`inputs.*${MAX_BATCH + 1}.*${MAX_BATCH}`));
  });

  it("router --max-input-size, for numbers and for strings", async () => {
    expect((await predict("nums", { input: new Array(MAX_INPUT).fill(1) })).status).toBe(200);
    const numbers = await predict("nums", { input: new Array(MAX_INPUT + 1).fill(1) });
    expect(numbers.status).toBe(400);
    expect(String(numbers.json.cause)).toMatch(/inputs/);
    expect((await predict("texts", { input: "s".repeat(MAX_INPUT) })).status).toBe(200);
    const text = await predict("texts", { input: "s".repeat(MAX_INPUT + 1) });
    expect(text.status).toBe(400);
    expect(String(text.json.cause)).toMatch(/inputs/);
  });

  it("registry --max-applications and name length", async () => {
    const mgmt = system.management();
    const name63 = "a".repeat(63);
    await mgmt.createApplication({ name: name63, inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 0n });
    const tooMany = await rejection(mgmt.createApplication({ name: "fourth", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 0n }));
    expect(tooMany.code).toBe(Code.ResourceExhausted);
    expect(tooMany.rawMessage).toMatch(/--max-applications/);
    await mgmt.deleteApplication({ name: name63 });
    const tooLong = await rejection(mgmt.createApplication({ name: "a".repeat(64), inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 0n }));
    expect(tooLong.code).toBe(Code.InvalidArgument);
    expect(tooLong.rawMessage).toMatch(/64 characters long; the limit is 63/);
  });

  it("registry --max-model-versions and --max-desired-replicas", async () => {
    const mgmt = system.management();
    const model = (version: string, desiredReplicas = 0) => ({
      name: "m",
      version,
      inputType: InputType.DOUBLES,
      desiredReplicas,
      runtime: { kind: { case: "command" as const, value: { argv: ["true"] } } },
    });
    await mgmt.createModel({ model: model("1") });
    const replicas = await rejection(mgmt.createModel({ model: model("2", 3) }));
    expect(replicas.rawMessage).toBe("model.desired_replicas is 3; the limit is 2");
    await mgmt.createModel({ model: model("2") });
    const versions = await rejection(mgmt.createModel({ model: model("3") }));
    expect(versions.code).toBe(Code.ResourceExhausted);
    expect(versions.rawMessage).toMatch(/--max-model-versions/);
  });

  it("registry --max-policy-users and --max-policy-state-bytes: a fresh uid with every update keeps at most the bound, least recently used out", async () => {
    const mgmt = system.management();
    const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    // What a router does with each feedback of a new user: read the state (none), then compare-and-set it.
    const learn = async (uid: string, value: unknown) => {
      const read = await mgmt.getPolicyState({ application: "nums", uid });
      return mgmt.updatePolicyState({ application: "nums", uid, expectedVersion: read.version, state: json(value) });
    };
    for (let i = 0; i < 40; i++) expect((await learn(`user-${i}`, { w: i })).applied).toBe(true);
    const kept = [];
    for (let i = 0; i < 40; i++) if ((await mgmt.getPolicyState({ application: "nums", uid: `user-${i}` })).state.length > 0) kept.push(i);
    expect(kept).toEqual([35, 36, 37, 38, 39]);
    // Read last (the loop above read them in order), user-35 stays when the next new user comes; user-36 goes.
    await mgmt.getPolicyState({ application: "nums", uid: "user-35" });
    await learn("user-40", { w: 40 });
    expect((await mgmt.getPolicyState({ application: "nums", uid: "user-35" })).state.length).toBeGreaterThan(0);
    expect((await mgmt.getPolicyState({ application: "nums", uid: "user-36" })).state.length).toBe(0);
    // Bytes: three states of 100 KiB pass 256 KiB; the oldest of them goes.
    const big = (uid: string) => learn(uid, { pad: "x".repeat(100 * 1024) });
    await big("big-a");
    await big("big-b");
    await big("big-c");
    expect((await mgmt.getPolicyState({ application: "nums", uid: "big-a" })).state.length).toBe(0);
    expect((await mgmt.getPolicyState({ application: "nums", uid: "big-c" })).state.length).toBeGreaterThan(100 * 1024);
    const metrics = await (await fetch(`http://127.0.0.1:${system.metricsPort("registry")}/metrics`)).text();
    const series = (name: string) => Number(new RegExp(`^${name}\\{application="nums"[^}]*\\} (\\d+)$`, "m").exec(metrics)?.[1]);
    // 40 + 1 + 3 users with room for 5: 36 went by count, at least one more by bytes.
    expect(series("clipper_registry_policy_state_evictions_total")).toBeGreaterThanOrEqual(37);
    expect(series("clipper_registry_policy_users")).toBeLessThanOrEqual(MAX_POLICY_USERS);
    expect(series("clipper_registry_policy_user_state_bytes")).toBeLessThanOrEqual(MAX_POLICY_BYTES);
  });

  it("container-manager --max-replicas", async () => {
    const cm = system.containerManager();
    const past = await rejection(cm.scaleModel({ name: "m", version: "1", replicas: 3, timeoutSeconds: 1 }));
    expect(past.code).toBe(Code.InvalidArgument);
    expect(past.rawMessage).toBe("replicas is 3; the limit is 2");
    // At the bound the limit lets it through; the registry's own limit on desired replicas is 2 too.
    const atBound = await cm.scaleModel({ name: "m", version: "1", replicas: 2, timeoutSeconds: 1 }).catch((e: unknown) => ConnectError.from(e));
    if (atBound instanceof ConnectError) expect(atBound.rawMessage).not.toMatch(/limit/);
    await cm.scaleModel({ name: "m", version: "1", replicas: 0, timeoutSeconds: 5 }).catch(() => undefined);
  });
});
