import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { type ConfigChange, ConfigChangeSchema } from "../../../gen/clipper/v1/resources_pb.js";
import { type RegistryStore, StoreConflictError } from "../store.js";

type Change = ConfigChange["change"];
const change = (c: Change): ConfigChange => create(ConfigChangeSchema, { change: c });

export const sampleChanges = {
  app: (name: string, slo = 1000n): ConfigChange =>
    change({
      case: "applicationUpserted",
      value: {
        $typeName: "clipper.v1.Application",
        name,
        inputType: InputType.DOUBLES,
        defaultOutput: "-1",
        sloMicros: slo,
        linkedModels: [],
        description: "",
        cacheEnabled: false,
        defaultOnOverload: false,
      },
    }),
  model: (name: string, version: string): ConfigChange =>
    change({
      case: "modelUpserted",
      value: {
        $typeName: "clipper.v1.Model",
        name,
        version,
        inputType: InputType.DOUBLES,
        runtime: {
          $typeName: "clipper.v1.ModelRuntime",
          kind: { case: "command", value: { $typeName: "clipper.v1.CommandRuntime", argv: ["true"], env: {}, workingDir: "" } },
        },
        maxBatchSize: 8,
        labels: { team: "a" },
        desiredReplicas: 1,
        createdAtMs: 5n,
      },
    }),
};

/**
 * The behaviour every RegistryStore must have. `makeStore` opens the store on
 * the same backing data every time it is called within one test (so a test can
 * close and reopen it); `reset` gives the next test empty data.
 */
export function describeStoreContract(name: string, hooks: { open: () => Promise<RegistryStore>; reset: () => Promise<void> }): void {
  describe(`${name} store contract`, () => {
    const opened: RegistryStore[] = [];
    const open = async () => {
      const s = await hooks.open();
      opened.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      await hooks.reset();
    });

    it("starts empty at revision 0", async () => {
      const snap = await (await open()).load();
      expect(snap.revision).toBe(0n);
      expect(snap.applications).toEqual([]);
      expect(snap.models).toEqual([]);
    });

    it("commits changes atomically and counts one revision per change", async () => {
      const store = await open();
      expect(await store.commit(0n, [sampleChanges.app("a"), sampleChanges.model("m", "1")])).toBe(2n);
      expect(
        await store.commit(2n, [
          change({ case: "currentVersionSet", value: { $typeName: "clipper.v1.CurrentVersion", modelName: "m", version: "1" } }),
          change({
            case: "replicasReported",
            value: {
              $typeName: "clipper.v1.ReplicaSet",
              modelName: "m",
              modelVersion: "1",
              replicas: [
                {
                  $typeName: "clipper.v1.Replica",
                  id: "r1",
                  modelName: "m",
                  modelVersion: "1",
                  endpoint: "127.0.0.1:5",
                  state: 2,
                  restarts: 0,
                  message: "",
                  startedAtMs: 1n,
                },
              ],
            },
          }),
        ]),
      ).toBe(4n);
      const snap = await store.load();
      expect(snap.revision).toBe(4n);
      expect(snap.applications.map((a) => a.name)).toEqual(["a"]);
      expect(snap.models).toEqual([sampleChanges.model("m", "1").change.value]);
      expect(snap.currentVersions.map((c) => `${c.modelName}:${c.version}`)).toEqual(["m:1"]);
      expect(snap.replicaSets[0]?.replicas[0]?.endpoint).toBe("127.0.0.1:5");
    });

    it("overwrites on upsert and removes on delete", async () => {
      const store = await open();
      await store.commit(0n, [sampleChanges.app("a", 1n), sampleChanges.app("b")]);
      await store.commit(2n, [sampleChanges.app("a", 7n), change({ case: "applicationDeleted", value: "b" })]);
      await store.commit(4n, [
        sampleChanges.model("m", "1"),
        change({ case: "modelDeleted", value: { $typeName: "clipper.v1.ModelVersionKey", modelName: "m", version: "1" } }),
        change({ case: "currentVersionSet", value: { $typeName: "clipper.v1.CurrentVersion", modelName: "m", version: "1" } }),
        change({ case: "currentVersionCleared", value: "m" }),
        change({ case: "replicasReported", value: { $typeName: "clipper.v1.ReplicaSet", modelName: "m", modelVersion: "1", replicas: [] } }),
      ]);
      const snap = await store.load();
      expect(snap.revision).toBe(9n);
      expect(snap.applications.map((a) => [a.name, a.sloMicros])).toEqual([["a", 7n]]);
      expect(snap.models).toEqual([]);
      expect(snap.currentVersions).toEqual([]);
      expect(snap.replicaSets).toEqual([]);
    });

    it("refuses a commit against a stale revision and writes nothing", async () => {
      const store = await open();
      await store.commit(0n, [sampleChanges.app("a")]);
      const err = await store.commit(0n, [sampleChanges.app("b")]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreConflictError);
      expect((err as StoreConflictError).actual).toBe(1n);
      const snap = await store.load();
      expect(snap.revision).toBe(1n);
      expect(snap.applications.map((a) => a.name)).toEqual(["a"]);
    });

    it("keeps everything across close and reopen", async () => {
      const first = await open();
      await first.commit(0n, [sampleChanges.app("a"), sampleChanges.model("m", "1.0")]);
      await first.close();
      const snap = await (await open()).load();
      expect(snap.revision).toBe(2n);
      expect(snap.applications.map((a) => a.name)).toEqual(["a"]);
      expect(snap.models.map((m) => `${m.name}:${m.version}`)).toEqual(["m:1.0"]);
    });

    it("keeps policy states per application and uid with compare-and-set versions, apart from the configuration", async () => {
      const store = await open();
      const app = { application: "a", uid: "" };
      const user = { application: "a", uid: "u1" };
      const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
      expect(await store.getPolicyState(app)).toEqual({ version: 0n, state: new Uint8Array() });
      expect(await store.swapPolicyState(app, 0n, json({ w: 1 }))).toEqual({ applied: true, version: 1n });
      expect(await store.swapPolicyState(user, 0n, json({ w: 2 }))).toEqual({ applied: true, version: 1n });
      const stale = await store.swapPolicyState(app, 0n, json({ w: 3 }));
      expect(stale).toMatchObject({ applied: false, version: 1n });
      expect(stale.applied ? "" : new TextDecoder().decode(stale.state)).toBe('{"w":1}');
      expect(await store.swapPolicyState(app, 1n, json({ w: 4 }))).toEqual({ applied: true, version: 2n });
      const racing = await Promise.all([store.swapPolicyState(user, 1n, json({ x: 1 })), store.swapPolicyState(user, 1n, json({ x: 2 }))]);
      expect(racing.filter((r) => r.applied)).toHaveLength(1);
      const snap = await store.load();
      expect(snap.revision).toBe(0n);
      expect(snap.applications).toEqual([]);
      await store.commit(0n, [sampleChanges.app("a")]);
      expect((await store.load()).applications.map((a) => a.name)).toEqual(["a"]);
      expect(new TextDecoder().decode((await store.getPolicyState(app)).state)).toBe('{"w":4}');
      expect((await store.getPolicyState(user)).version).toBe(2n);
    });

    it("clears one application's policy states by a version step, leaving other applications'", async () => {
      const store = await open();
      const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
      const app = { application: "a", uid: "" };
      const user = { application: "a", uid: "u1" };
      const other = { application: "ab", uid: "" };
      await store.swapPolicyState(app, 0n, json({ w: 1 }));
      await store.swapPolicyState(app, 1n, json({ w: 2 }));
      await store.swapPolicyState(user, 0n, json({ w: 3 }));
      await store.swapPolicyState(other, 0n, json({ w: 4 }));
      expect(await store.clearPolicyStates("a")).toBe(2);
      expect(await store.getPolicyState(app)).toEqual({ version: 3n, state: new Uint8Array() });
      expect(await store.getPolicyState(user)).toEqual({ version: 2n, state: new Uint8Array() });
      expect((await store.getPolicyState(other)).version).toBe(1n);
      // A router holding the state read before the clear cannot write over it.
      expect(await store.swapPolicyState(app, 2n, json({ stale: true }))).toMatchObject({ applied: false, version: 3n });
      expect(await store.swapPolicyState(app, 3n, json({ w: 5 }))).toEqual({ applied: true, version: 4n });
      expect(await store.clearPolicyStates("a")).toBe(1);
      expect(await store.clearPolicyStates("none")).toBe(0);
    });

    it("serialises concurrent commits: exactly one of two racing writers wins", async () => {
      const store = await open();
      const results = await Promise.allSettled([store.commit(0n, [sampleChanges.app("x")]), store.commit(0n, [sampleChanges.app("y")])]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const snap = await store.load();
      expect(snap.revision).toBe(1n);
      expect(snap.applications).toHaveLength(1);
    });
  });
}
