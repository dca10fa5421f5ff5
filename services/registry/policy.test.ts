import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { type SelectionPolicy, SelectionPolicySchema } from "../../gen/clipper/v1/resources_pb.js";
import { Code } from "../shared/index.js";
import { rejection } from "../shared/testing/rejection.js";
import { MemoryStore } from "./memory-store.js";
import { Registry } from "./registry.js";

const policy = (init: Parameters<typeof create<typeof SelectionPolicySchema>>[1]): SelectionPolicy => create(SelectionPolicySchema, init);
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

async function withApp() {
  const r = await Registry.open({ store: new MemoryStore() });
  await r.createApplication({
    $typeName: "clipper.v1.CreateApplicationRequest",
    name: "app",
    inputType: InputType.STRINGS,
    defaultOutput: "",
    sloMicros: 0n,
    description: "",
    cacheEnabled: false,
    defaultOnOverload: false,
  });
  return r;
}

describe("Registry selection policies", () => {
  it("replaces the policy whole on update and publishes it", async () => {
    const r = await withApp();
    const { changes } = r.watch();
    await r.updateApplication({
      $typeName: "clipper.v1.UpdateApplicationRequest",
      name: "app",
      policy: policy({ kind: { case: "split", value: { weights: { "m:1": 0.9, "m:2": 0.1 } } } }),
    });
    await r.updateApplication({
      $typeName: "clipper.v1.UpdateApplicationRequest",
      name: "app",
      policy: policy({ kind: { case: "exp3", value: { gamma: 0.2 } } }),
    });
    expect(r.getApplication("app").policy?.kind).toEqual({ case: "exp3", value: expect.objectContaining({ gamma: 0.2 }) });
    changes.end();
  });

  it("refuses bad policies naming the field", async () => {
    const r = await withApp();
    const update = (p: SelectionPolicy) => r.updateApplication({ $typeName: "clipper.v1.UpdateApplicationRequest", name: "app", policy: p });
    expect((await rejection(update(policy({})))).rawMessage).toMatch(/policy has no kind/);
    expect((await rejection(update(policy({ kind: { case: "split", value: { weights: {} } } })))).rawMessage).toMatch(/policy.split.weights is empty/);
    expect((await rejection(update(policy({ kind: { case: "split", value: { weights: { a: 0 } } } })))).rawMessage).toMatch(/all 0/);
    expect((await rejection(update(policy({ kind: { case: "split", value: { weights: { "A!": 1 } } } })))).code).toBe(Code.InvalidArgument);
    expect((await rejection(update(policy({ kind: { case: "split", value: { weights: { a: -1 } } } })))).rawMessage).toMatch(/split.weights\["a"\] is -1/);
    // Found by the fuzz test: an empty version after "model:" must name the field too.
    expect((await rejection(update(policy({ kind: { case: "split", value: { weights: { "a:": 1 } } } })))).rawMessage).toMatch(
      /policy.split.weights key "a:" version is empty/,
    );
    expect((await rejection(update(policy({ kind: { case: "exp3", value: { gamma: 2 } } })))).rawMessage).toMatch(/exp3.gamma is 2/);
    expect((await rejection(update(policy({ kind: { case: "epsilonGreedy", value: { epsilon: Number.NaN } } })))).rawMessage).toMatch(/epsilon_greedy.epsilon/);
    expect((await rejection(update(policy({ kind: { case: "thompson", value: {} }, lossScale: -1 })))).rawMessage).toMatch(/loss_scale is -1/);
  });

  it("keeps policy state per application and uid by compare-and-set, and checks it", async () => {
    const r = await withApp();
    expect(await r.getPolicyState("app", "")).toEqual({ version: 0n, state: new Uint8Array() });
    expect(await r.updatePolicyState("app", "", 0n, json({ a: 1 }))).toMatchObject({ applied: true, version: 1n });
    expect(await r.updatePolicyState("app", "", 0n, json({ a: 2 }))).toMatchObject({ applied: false, version: 1n });
    expect(await r.updatePolicyState("app", "u1", 0n, json({ a: 3 }))).toMatchObject({ applied: true, version: 1n });
    expect((await rejection(r.getPolicyState("nope", ""))).code).toBe(Code.NotFound);
    expect((await rejection(r.updatePolicyState("app", "", 1n, new TextEncoder().encode("not json")))).rawMessage).toMatch(/state is not UTF-8 JSON/);
    expect((await rejection(r.updatePolicyState("app", "", 1n, json([1])))).rawMessage).toBe("state must be a JSON object");
    expect((await rejection(r.updatePolicyState("app", "x".repeat(300), 0n, json({})))).rawMessage).toMatch(/uid is 300 bytes/);
    expect(r.revision).toBe(1n);
  });

  it("forgets what a deleted application learned: one created again under its name starts from nothing", async () => {
    const store = new MemoryStore();
    const r = await Registry.open({ store });
    const request = {
      $typeName: "clipper.v1.CreateApplicationRequest",
      name: "app",
      inputType: InputType.STRINGS,
      defaultOutput: "",
      sloMicros: 0n,
      description: "",
      cacheEnabled: false,
      defaultOnOverload: false,
    } as const;
    await r.createApplication(request);
    await r.updatePolicyState("app", "", 0n, json({ learned: 1 }));
    await r.updatePolicyState("app", "u1", 0n, json({ learned: 2 }));
    await r.deleteApplication("app");
    expect((await store.getPolicyState({ application: "app", uid: "" })).state).toEqual(new Uint8Array());
    await r.createApplication(request);
    expect(await r.getPolicyState("app", "")).toEqual({ version: 2n, state: new Uint8Array() });
    expect((await r.getPolicyState("app", "u1")).state).toEqual(new Uint8Array());

    // State left by a deletion whose clearing failed is cleared when the application is created again.
    await store.swapPolicyState({ application: "other", uid: "" }, 0n, json({ left: true }));
    await r.createApplication({ ...request, name: "other" });
    expect(await r.getPolicyState("other", "")).toEqual({ version: 2n, state: new Uint8Array() });
  });
});
