import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { type Model, ModelSchema, ReplicaSchema, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { createLogger } from "../shared/index.js";
import { desiredFromModels, planReconcile, Reconciler } from "./reconciler.js";
import { FakeBackend } from "./testing/fake-backend.js";

const model = (name: string, version: string, desiredReplicas: number): Model =>
  create(ModelSchema, {
    name,
    version,
    inputType: InputType.DOUBLES,
    desiredReplicas,
    runtime: { kind: { case: "command", value: { argv: ["serve"] } } },
  });
const replica = (id: string, name: string, version: string, state: ReplicaState, startedAtMs = 0n) =>
  create(ReplicaSchema, { id, modelName: name, modelVersion: version, state, startedAtMs });
const logger = createLogger({ service: "test", level: "silent" });

describe("planReconcile", () => {
  it("starts what is missing and stops versions that are no longer desired", () => {
    const plan = planReconcile(desiredFromModels([model("a", "1", 2), model("b", "1", 0)]), [
      replica("x", "a", "1", ReplicaState.READY),
      replica("y", "gone", "1", ReplicaState.READY),
      replica("z", "b", "1", ReplicaState.STARTING),
    ]);
    expect(plan.start.map((s) => `${s.modelName}:${s.modelVersion}`)).toEqual(["a:1"]);
    expect(plan.stop.sort()).toEqual(["y", "z"]);
  });

  it("scales down broken replicas first, then the newest", () => {
    const plan = planReconcile(desiredFromModels([model("a", "1", 1)]), [
      replica("old-ready", "a", "1", ReplicaState.READY, 1n),
      replica("new-ready", "a", "1", ReplicaState.READY, 5n),
      replica("failed", "a", "1", ReplicaState.FAILED, 2n),
    ]);
    expect(plan).toEqual({ start: [], stop: ["failed", "new-ready"] });
  });

  it("ignores STOPPING replicas and counts FAILED ones, so a broken model is not restarted in a loop", () => {
    const plan = planReconcile(desiredFromModels([model("a", "1", 2)]), [
      replica("s", "a", "1", ReplicaState.STOPPING),
      replica("f", "a", "1", ReplicaState.FAILED),
    ]);
    expect(plan.start).toHaveLength(1);
    expect(plan.stop).toEqual([]);
  });

  it("skips model versions without a runtime", () => {
    expect(desiredFromModels([create(ModelSchema, { name: "a", version: "1", desiredReplicas: 1 })]).size).toBe(0);
  });
});

describe("Reconciler", () => {
  it("converges a backend and is idempotent", async () => {
    const backend = new FakeBackend();
    const reconciler = new Reconciler(backend, logger);
    reconciler.reconcile([model("a", "1", 2)]);
    expect(backend.replicas()).toHaveLength(2);
    expect(reconciler.reconcile([model("a", "1", 2)])).toEqual({ start: [], stop: [] });
    reconciler.reconcile([model("a", "1", 1)]);
    await Promise.resolve();
    expect(backend.replicas()).toHaveLength(1);
    reconciler.reconcile([]);
    await Promise.resolve();
    expect(backend.replicas()).toHaveLength(0);
  });

  it("retries FAILED replicas of a version when asked", async () => {
    const backend = new FakeBackend();
    const reconciler = new Reconciler(backend, logger);
    reconciler.reconcile([model("a", "1", 1)]);
    const [first] = backend.replicas();
    backend.set(first?.id ?? "", ReplicaState.FAILED, "exited with code 1");
    expect(reconciler.reconcile([model("a", "1", 1)]).start).toHaveLength(0);
    await reconciler.retryFailed("a", "1");
    reconciler.reconcile([model("a", "1", 1)]);
    expect(backend.replicas().map((r) => r.state)).toEqual([ReplicaState.STARTING]);
    expect(backend.started).toHaveLength(2);
  });

  it("starts a version only once it can start (its Python environment is ready), and stops as before", async () => {
    const backend = new FakeBackend();
    const ready = new Set<string>(["b"]);
    const reconciler = new Reconciler(backend, logger, (spec) => ready.has(spec.modelName));
    expect(reconciler.reconcile([model("a", "1", 2), model("b", "1", 1)]).start.map((s) => s.modelName)).toEqual(["b"]);
    expect(backend.replicas().map((r) => r.modelName)).toEqual(["b"]);
    ready.add("a");
    expect(reconciler.reconcile([model("a", "1", 2), model("b", "1", 1)]).start.map((s) => s.modelName)).toEqual(["a", "a"]);
    reconciler.reconcile([model("a", "1", 2)]);
    await Promise.resolve();
    expect(backend.replicas().map((r) => r.modelName)).toEqual(["a", "a"]);
  });
});
