import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import {
  CreateApplicationRequestSchema,
  CreateModelRequestSchema,
  UpdateApplicationRequestSchema,
  UpdateModelRequestSchema,
} from "../../gen/clipper/v1/management_service_pb.js";
import { type ConfigChange, ModelResourcesSchema, ReplicaSetSchema, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, type ConnectError } from "../shared/index.js";
import { rejection } from "../shared/testing/rejection.js";
import { MemoryStore } from "./memory-store.js";
import { Registry } from "./registry.js";
import type { RegistryStore } from "./store.js";

const appRequest = (name: string, inputType = InputType.DOUBLES, sloMicros = 20_000n) =>
  create(CreateApplicationRequestSchema, { name, inputType, sloMicros, defaultOutput: "-1" });
const modelRequest = (name: string, version: string, inputType = InputType.DOUBLES, setCurrent = false) =>
  create(CreateModelRequestSchema, {
    model: { name, version, inputType, runtime: { kind: { case: "command", value: { argv: ["python3", "m.py"] } } }, desiredReplicas: 1 },
    setCurrent,
  });
const replicas = (name: string, version: string, ids: string[]) =>
  create(ReplicaSetSchema, {
    modelName: name,
    modelVersion: version,
    replicas: ids.map((id, i) => ({ id, endpoint: `127.0.0.1:${7000 + i}`, state: ReplicaState.READY })),
  });

async function open(store: RegistryStore = new MemoryStore(), maxWatchBacklog = 100) {
  let clock = 1000;
  return Registry.open({ store, now: () => clock++, maxWatchBacklog });
}

describe("Registry applications", () => {
  it("creates, gets, lists, updates and deletes an application", async () => {
    const r = await open();
    const app = await r.createApplication(appRequest("app-1"));
    expect(app).toMatchObject({ name: "app-1", inputType: InputType.DOUBLES, sloMicros: 20_000n, defaultOutput: "-1", linkedModels: [] });
    expect(r.getApplication("app-1").name).toBe("app-1");
    await r.createApplication(appRequest("a0"));
    expect(r.listApplications().map((a) => a.name)).toEqual(["a0", "app-1"]);
    const updated = await r.updateApplication(create(UpdateApplicationRequestSchema, { name: "app-1", sloMicros: 5n, description: "d" }));
    expect(updated).toMatchObject({ sloMicros: 5n, description: "d", defaultOutput: "-1" });
    await r.deleteApplication("app-1");
    expect((await rejection(() => r.getApplication("app-1"))).code).toBe(Code.NotFound);
  });

  it("uses the default SLO for 0", async () => {
    const r = await open();
    expect((await r.createApplication(appRequest("a", InputType.INTS, 0n))).sloMicros).toBe(100_000n);
  });

  it("rejects bad fields with INVALID_ARGUMENT naming them", async () => {
    const r = await open();
    const cases: Array<[Promise<unknown>, RegExp]> = [
      [r.createApplication(appRequest("Bad_Name")), /application name "Bad_Name" is invalid/],
      [r.createApplication(appRequest("")), /application name is empty/],
      [r.createApplication(appRequest("a", InputType.UNSPECIFIED)), /input_type is unspecified/],
      [r.createApplication(appRequest("a", 99 as InputType)), /input_type has unknown value 99/],
      [r.createApplication(appRequest("a", InputType.DOUBLES, -1n)), /slo_micros is -1/],
      [r.createApplication(create(CreateApplicationRequestSchema, { name: "a", inputType: 1, description: "x".repeat(5000) })), /description is 5000 bytes/],
    ];
    for (const [p, message] of cases) {
      const err = await rejection(p);
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(message);
    }
    expect(r.revision).toBe(0n);
  });

  it("creates an identical application again as a no-op, and refuses another definition naming each difference", async () => {
    const r = await open();
    const first = await r.createApplication(appRequest("a", InputType.DOUBLES, 0n));
    // The same definition (slo_micros 0 is the default it was stored with), even after it was linked.
    await r.createModel(modelRequest("m", "1"));
    await r.linkModel("a", "m");
    const linked = r.revision;
    expect(await r.createApplication(appRequest("a", InputType.DOUBLES, 0n))).toEqual({ ...first, linkedModels: ["m"] });
    expect(await r.createApplication(appRequest("a", InputType.DOUBLES, 100_000n))).toMatchObject({ name: "a", sloMicros: 100_000n });
    expect(r.revision).toBe(linked);

    const other = await rejection(
      r.createApplication(
        create(CreateApplicationRequestSchema, {
          name: "a",
          inputType: InputType.INTS,
          defaultOutput: "0",
          sloMicros: 20_000n,
          cacheEnabled: true,
          policy: { kind: { case: "exp3", value: { gamma: 0.1 } } },
        }),
      ),
    );
    expect(other.code).toBe(Code.AlreadyExists);
    expect(other.rawMessage).toBe(
      'application "a" already exists with a different definition: input_type is doubles, requested ints; default_output is "-1", requested "0"; ' +
        'slo_micros is 100000, requested 20000; cache_enabled is false, requested true; policy is {"single":{}}, requested {"exp3":{"gamma":0.1}}',
    );
    const described = await rejection(
      r.createApplication(create(CreateApplicationRequestSchema, { ...appRequest("a", InputType.DOUBLES, 0n), description: "x".repeat(200) })),
    );
    expect(described.rawMessage).toMatch(
      /^application "a" already exists with a different definition: description is "", requested "x{79}\.\.\." \(200 bytes\)$/,
    );
    expect(r.revision).toBe(linked);
  });

  it("answers NOT_FOUND for unknown names", async () => {
    const r = await open();
    await r.createApplication(appRequest("a"));
    expect((await rejection(r.updateApplication(create(UpdateApplicationRequestSchema, { name: "b" })))).code).toBe(Code.NotFound);
    expect((await rejection(r.deleteApplication("b"))).code).toBe(Code.NotFound);
  });
});

describe("Registry models and current versions", () => {
  it("makes the first version current and later ones only with set_current", async () => {
    const r = await open();
    expect((await r.createModel(modelRequest("m", "1"))).currentVersion).toBe("1");
    expect((await r.createModel(modelRequest("m", "2"))).currentVersion).toBe("1");
    expect((await r.createModel(modelRequest("m", "3", InputType.DOUBLES, true))).currentVersion).toBe("3");
    expect(r.getModel("m", "").model.version).toBe("3");
    expect(r.getModel("m", "2")).toMatchObject({ model: { version: "2", createdAtMs: 1001n }, currentVersion: "3" });
    expect(await r.setModelVersion("m", "1")).toBe("3");
    expect(r.listModels("m").currentVersions.map((c) => c.version)).toEqual(["1"]);
    expect(r.listModels("").models.map((m) => m.version)).toEqual(["1", "2", "3"]);
    expect(r.listModels("other")).toEqual({ models: [], currentVersions: [] });
  });

  it("validates models", async () => {
    const r = await open();
    const noRuntime = create(CreateModelRequestSchema, { model: { name: "m", version: "1", inputType: InputType.INTS } });
    expect((await rejection(r.createModel(noRuntime))).rawMessage).toMatch(/model.runtime is not set/);
    expect((await rejection(r.createModel(create(CreateModelRequestSchema, {})))).rawMessage).toBe("model is missing");
    expect((await rejection(r.createModel(modelRequest("m", "1/2")))).rawMessage).toMatch(/model version "1\/2" is invalid/);
    const badDigest = create(CreateModelRequestSchema, {
      model: { name: "m", version: "1", inputType: InputType.INTS, runtime: { kind: { case: "pythonClosure", value: { artifactDigest: "abc" } } } },
    });
    expect((await rejection(r.createModel(badDigest))).rawMessage).toMatch(/artifact_digest "abc" is not a sha256/);
    const closure = (interpreter: string) =>
      create(CreateModelRequestSchema, {
        model: {
          name: "m",
          version: "1",
          inputType: InputType.INTS,
          runtime: { kind: { case: "pythonClosure", value: { artifactDigest: "a".repeat(64), interpreter } } },
        },
      });
    expect((await rejection(r.createModel(closure("python3")))).rawMessage).toBe(
      'model.runtime.python_closure.interpreter "python3" must be an absolute path (or empty)',
    );
    expect((await rejection(r.createModel(closure(`/${"x".repeat(5000)}`)))).rawMessage).toBe(
      "model.runtime.python_closure.interpreter is 5001 bytes long; the limit is 4096",
    );
    await r.createModel(modelRequest("m", "1"));
    expect((await rejection(r.createModel(modelRequest("m", "1")))).code).toBe(Code.AlreadyExists);
    const otherType = await rejection(r.createModel(modelRequest("m", "2", InputType.STRINGS)));
    expect(otherType.code).toBe(Code.FailedPrecondition);
    expect(otherType.rawMessage).toMatch(/takes strings but the model's other versions take doubles/);
    expect((await rejection(() => r.getModel("m", "9"))).rawMessage).toBe('model "m" has no version "9"');
    expect((await rejection(() => r.getModel("nope", ""))).code).toBe(Code.NotFound);
    expect((await rejection(r.setModelVersion("m", "9"))).code).toBe(Code.NotFound);
  });

  it("keeps a model's requests and limits, and refuses names, quantities and limits Kubernetes would refuse", async () => {
    const r = await open();
    const withResources = (version: string, resources: { requests?: Record<string, string>; limits?: Record<string, string> }) => {
      const req = modelRequest("m", version);
      if (req.model) req.model.resources = create(ModelResourcesSchema, resources);
      return req;
    };
    const good = { requests: { cpu: "500m", memory: "256Mi", "nvidia.com/gpu": "1" }, limits: { memory: "1Gi", cpu: "1.5", "nvidia.com/gpu": "1" } };
    await r.createModel(withResources("1", good));
    expect(r.getModel("m", "1").model.resources).toMatchObject(good);
    expect((await rejection(r.createModel(withResources("2", { requests: { "Bad Name": "1" } })))).rawMessage).toMatch(
      /model.resources.requests names "Bad Name", which is not a resource name/,
    );
    expect((await rejection(r.createModel(withResources("2", { limits: { memory: "lots" } })))).rawMessage).toBe(
      'model.resources.limits["memory"] is "lots", which is not a Kubernetes quantity (such as 500m, 2, 256Mi or 1Gi)',
    );
    expect((await rejection(r.createModel(withResources("2", { requests: { memory: "1Gi" }, limits: { memory: "512Mi" } })))).rawMessage).toBe(
      'model.resources.limits["memory"] 512Mi is below its request 1Gi: Kubernetes refuses such a pod',
    );
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`example.com/r${i}`, "1"]));
    expect((await rejection(r.createModel(withResources("2", { limits: many })))).rawMessage).toMatch(/limits has 17 entries; the limit is 16/);
    await r.createModel(withResources("2", { requests: { cpu: "2" }, limits: { cpu: "2000m" } }));
  });

  it("updates replicas, batch size and labels (merged or replaced)", async () => {
    const r = await open();
    await r.createModel(modelRequest("m", "1"));
    let m = await r.updateModel(create(UpdateModelRequestSchema, { name: "m", version: "1", desiredReplicas: 3, labels: { a: "1" } }));
    expect(m).toMatchObject({ desiredReplicas: 3, maxBatchSize: 0, labels: { a: "1" } });
    m = await r.updateModel(create(UpdateModelRequestSchema, { name: "m", version: "1", maxBatchSize: 16, labels: { b: "2" } }));
    expect(m).toMatchObject({ desiredReplicas: 3, maxBatchSize: 16, labels: { a: "1", b: "2" } });
    m = await r.updateModel(create(UpdateModelRequestSchema, { name: "m", version: "1", labels: { c: "3" }, replaceLabels: true }));
    expect(m.labels).toEqual({ c: "3" });
    const tooMany = await rejection(r.updateModel(create(UpdateModelRequestSchema, { name: "m", version: "1", desiredReplicas: 5000 })));
    expect(tooMany.code).toBe(Code.InvalidArgument);
  });

  it("refuses to delete the current version while others exist, and clears it with the last one", async () => {
    const r = await open();
    await r.createModel(modelRequest("m", "1"));
    await r.createModel(modelRequest("m", "2"));
    const err = await rejection(r.deleteModel("m", "1"));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/current version .*\(SetModelVersion\)/);
    expect((await r.deleteModel("m", "2")).map((k) => k.version)).toEqual(["2"]);
    expect((await rejection(r.deleteModel("m", "2"))).code).toBe(Code.NotFound);
    await r.deleteModel("m", "1");
    expect(r.listModels("")).toEqual({ models: [], currentVersions: [] });
    expect((await rejection(r.deleteModel("m", ""))).code).toBe(Code.NotFound);
  });
});

describe("Registry links", () => {
  it("links models of the app's input type, and names both types otherwise", async () => {
    const r = await open();
    await r.createApplication(appRequest("a"));
    await r.createModel(modelRequest("m", "1"));
    await r.createModel(modelRequest("s", "1", InputType.STRINGS));
    expect((await r.linkModel("a", "m")).linkedModels).toEqual(["m"]);
    const mismatch = await rejection(r.linkModel("a", "s"));
    expect(mismatch.code).toBe(Code.FailedPrecondition);
    expect(mismatch.rawMessage).toBe('model "s" takes strings but application "a" takes doubles');
    // Linking a linked model again is a no-op, as in Clipper.
    const revision = r.revision;
    expect((await r.linkModel("a", "m")).linkedModels).toEqual(["m"]);
    expect(r.revision).toBe(revision);
    expect((await rejection(r.linkModel("a", "zz"))).code).toBe(Code.NotFound);
    expect((await rejection(r.linkModel("zz", "m"))).code).toBe(Code.NotFound);
    expect((await r.unlinkModel("a", "m")).linkedModels).toEqual([]);
    expect((await rejection(r.unlinkModel("a", "m"))).code).toBe(Code.NotFound);
  });

  it("removes links when the model's last version goes, and keeps them while versions remain", async () => {
    const r = await open();
    await r.createApplication(appRequest("a"));
    await r.createApplication(appRequest("b"));
    await r.createModel(modelRequest("m", "1"));
    await r.createModel(modelRequest("m", "2", InputType.DOUBLES, true));
    await r.linkModel("a", "m");
    await r.linkModel("b", "m");
    await r.deleteModel("m", "1");
    expect(r.getApplication("a").linkedModels).toEqual(["m"]);
    await r.deleteModel("m", "");
    expect(r.getApplication("a").linkedModels).toEqual([]);
    expect(r.getApplication("b").linkedModels).toEqual([]);
  });
});

describe("Registry replicas", () => {
  it("replaces a version's replica set, removes it when empty or when the version is deleted", async () => {
    const r = await open();
    await r.createModel(modelRequest("m", "1"));
    await r.createModel(modelRequest("m", "2"));
    await r.reportReplicas(replicas("m", "1", ["r1", "r2"]));
    await r.reportReplicas(replicas("m", "1", ["r3"]));
    await r.reportReplicas(replicas("m", "2", ["r4"]));
    expect(r.listReplicas("m", "1").flatMap((s) => s.replicas.map((x) => [x.id, x.modelName, x.modelVersion]))).toEqual([["r3", "m", "1"]]);
    expect(r.listReplicas("", "")).toHaveLength(2);
    await r.reportReplicas(replicas("m", "1", []));
    expect(r.listReplicas("m", "")).toHaveLength(1);
    await r.deleteModel("m", "2");
    expect(r.listReplicas("", "")).toEqual([]);
  });

  it("skips a report equal to what is stored", async () => {
    const r = await open();
    await r.createModel(modelRequest("m", "1"));
    await r.reportReplicas(replicas("m", "1", ["r1"]));
    const rev = r.revision;
    await r.reportReplicas(replicas("m", "1", ["r1"]));
    await r.reportReplicas(replicas("m", "9", []));
    expect(r.revision).toBe(rev);
  });

  it("rejects replicas of unknown versions and malformed sets", async () => {
    const r = await open();
    await r.createModel(modelRequest("m", "1"));
    expect((await rejection(r.reportReplicas(replicas("m", "2", ["r1"])))).code).toBe(Code.NotFound);
    expect((await rejection(r.reportReplicas(replicas("m", "1", ["r1", "r1"])))).rawMessage).toMatch(/replicas\[1\].id "r1" appears twice/);
    expect((await rejection(r.reportReplicas(replicas("m", "1", [""])))).rawMessage).toMatch(/replicas\[0\].id is empty/);
    const foreign = replicas("m", "1", ["r1"]);
    const first = foreign.replicas[0];
    if (first) first.modelName = "x";
    expect((await rejection(r.reportReplicas(foreign))).rawMessage).toMatch(/is of x:1, not of the set's m:1/);
    expect((await rejection(r.reportReplicas(undefined))).rawMessage).toBe("replica_set is missing");
  });
});

describe("Registry watch", () => {
  const describeChange = (c: ConfigChange) => `${c.revision}:${c.change.case}`;

  it("gives a snapshot, then every later change in revision order", async () => {
    const r = await open();
    await r.createApplication(appRequest("a"));
    const { snapshot, changes } = r.watch();
    expect(snapshot.revision).toBe(1n);
    expect(snapshot.applications.map((a) => a.name)).toEqual(["a"]);
    await r.createModel(modelRequest("m", "1"));
    await r.linkModel("a", "m");
    await r.deleteModel("m", "");
    const seen: string[] = [];
    for await (const c of changes) {
      seen.push(describeChange(c));
      if (seen.length === 6) break;
    }
    expect(seen).toEqual([
      "2:modelUpserted",
      "3:currentVersionSet",
      "4:applicationUpserted",
      "5:modelDeleted",
      "6:currentVersionCleared",
      "7:applicationUpserted",
    ]);
    expect(r.watchers).toBe(0);
  });

  it("misses nothing when writes race with subscribing", async () => {
    const r = await open();
    const writes = Array.from({ length: 20 }, (_, i) => r.createApplication(appRequest(`a${i}`)));
    await Promise.resolve();
    const { snapshot, changes } = r.watch();
    await Promise.all(writes);
    const names = new Set(snapshot.applications.map((a) => a.name));
    let revision = snapshot.revision;
    for await (const c of changes) {
      expect(c.revision).toBe(revision + 1n);
      revision = c.revision;
      if (c.change.case === "applicationUpserted") names.add(c.change.value.name);
      if (revision === 20n) break;
    }
    expect(names.size).toBe(20);
  });

  it("ends a subscriber that falls more than the backlog behind with RESOURCE_EXHAUSTED", async () => {
    const r = await open(new MemoryStore(), 5);
    const slow = r.watch().changes;
    for (let i = 0; i < 6; i++) await r.createApplication(appRequest(`a${i}`));
    const err = await rejection(
      (async () => {
        for await (const _ of slow) {
          // The buffer was dropped when the subscriber was cut off: nothing arrives.
          throw new Error("unexpected change");
        }
      })(),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/^watch fell behind; reconnect/);
    expect(r.watchers).toBe(0);
  });

  it("reloads and ends watchers when the store moved under it", async () => {
    const store = new MemoryStore();
    const r = await open(store);
    await r.createApplication(appRequest("a"));
    const { changes } = r.watch();
    // Another writer (which the registry does not support, but must not corrupt).
    const other = await Registry.open({ store });
    await other.createApplication(appRequest("b"));
    const conflict = await rejection(r.createApplication(appRequest("c")));
    expect(conflict.code).toBe(Code.Aborted);
    expect(r.listApplications().map((a) => a.name)).toEqual(["a", "b"]);
    const ended = await rejection(
      (async () => {
        for await (const _ of changes) throw new Error("unexpected change");
      })(),
    );
    expect(ended.code).toBe(Code.Unavailable);
    await r.createApplication(appRequest("c"));
    expect(r.revision).toBe(3n);
  });

  it("refuses writes beyond the pending-write bound", async () => {
    const r = await Registry.open({ store: new MemoryStore(), maxPendingWrites: 2 });
    const results = await Promise.allSettled([0, 1, 2].map((i) => r.createApplication(appRequest(`a${i}`))));
    expect(results.map((x) => x.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
    const third = results[2];
    expect(third?.status === "rejected" && (third.reason as ConnectError).code).toBe(Code.ResourceExhausted);
  });
});

describe("Registry serving knobs", () => {
  it("keeps an application's cache and overload settings and changes them", async () => {
    const r = await open();
    await r.createApplication(create(CreateApplicationRequestSchema, { name: "a", inputType: InputType.DOUBLES, cacheEnabled: true }));
    expect(r.getApplication("a")).toMatchObject({ cacheEnabled: true, defaultOnOverload: false });
    await r.updateApplication(create(UpdateApplicationRequestSchema, { name: "a", cacheEnabled: false, defaultOnOverload: true }));
    expect(r.getApplication("a")).toMatchObject({ cacheEnabled: false, defaultOnOverload: true });
  });

  it("changes a model's batching knobs and refuses impossible ones, naming the field", async () => {
    const r = await open();
    await r.createModel(modelRequest("m", "1"));
    const updated = await r.updateModel(
      create(UpdateModelRequestSchema, {
        name: "m",
        version: "1",
        maxBatchSize: 32,
        batching: { maxWaitMicros: 2000, fixedSize: true, maxInFlightPerReplica: 2 },
      }),
    );
    expect(updated.batching).toMatchObject({ maxWaitMicros: 2000, fixedSize: true, maxInFlightPerReplica: 2 });
    const tooLong = await rejection(r.updateModel(create(UpdateModelRequestSchema, { name: "m", version: "1", batching: { maxWaitMicros: 60_000_000 } })));
    expect(tooLong.code).toBe(Code.InvalidArgument);
    expect(tooLong.rawMessage).toContain("batching.max_wait_micros");
    await r.createModel(modelRequest("n", "1"));
    const fixed = await rejection(r.updateModel(create(UpdateModelRequestSchema, { name: "n", version: "1", batching: { fixedSize: true } })));
    expect(fixed.rawMessage).toContain("fixed_size needs max_batch_size");
  });
});
