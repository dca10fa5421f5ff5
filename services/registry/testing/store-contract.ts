import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { type ConfigChange, ConfigChangeSchema } from "../../../gen/clipper/v1/resources_pb.js";
import { type PolicyStateBounds, type RegistryStore, StoreConflictError } from "../store.js";

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
      expect(await store.swapPolicyState(app, 0n, json({ w: 1 }))).toMatchObject({ applied: true, version: 1n });
      expect(await store.swapPolicyState(user, 0n, json({ w: 2 }))).toMatchObject({ applied: true, version: 1n });
      const stale = await store.swapPolicyState(app, 0n, json({ w: 3 }));
      expect(stale).toMatchObject({ applied: false, version: 1n });
      expect(stale.applied ? "" : new TextDecoder().decode(stale.state)).toBe('{"w":1}');
      expect(await store.swapPolicyState(app, 1n, json({ w: 4 }))).toMatchObject({ applied: true, version: 2n });
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
      expect(await store.swapPolicyState(app, 3n, json({ w: 5 }))).toMatchObject({ applied: true, version: 4n });
      expect(await store.clearPolicyStates("a")).toBe(1);
      expect(await store.clearPolicyStates("none")).toBe(0);
    });

    it("bounds an application's user states by count, evicting the least recently read or written, never the application's own", async () => {
      const store = await open();
      const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
      const bounds: PolicyStateBounds = { maxUsers: 3, maxUserBytes: 1024 * 1024 };
      const key = (uid: string, application = "a") => ({ application, uid });
      expect(await store.swapPolicyState(key(""), 0n, json({ app: 1 }), bounds)).toMatchObject({ applied: true, evicted: 0, users: 0 });
      for (const [i, uid] of ["u1", "u2", "u3"].entries()) {
        expect(await store.swapPolicyState(key(uid), 0n, json({ w: uid }), bounds)).toMatchObject({ applied: true, version: 1n, evicted: 0, users: i + 1 });
      }
      await store.swapPolicyState(key("u2"), 1n, json({ w: "u2 again" }), bounds);
      // Reading u1 uses it: u3 is now the least recently used.
      expect((await store.getPolicyState(key("u1"))).version).toBe(1n);
      expect(await store.swapPolicyState(key("u4"), 0n, json({ w: "u4" }), bounds)).toMatchObject({ applied: true, evicted: 1, users: 3 });
      const u3 = await store.getPolicyState(key("u3"));
      expect(u3.state).toEqual(new Uint8Array());
      // The evicted key reads at the highest evicted version, not back at 0: a stale compare-and-set fails.
      expect(u3.version).toBe(1n);
      expect(await store.swapPolicyState(key("u3"), 0n, json({ stale: true }), bounds)).toMatchObject({ applied: false, version: 1n });
      expect(new TextDecoder().decode((await store.getPolicyState(key("u1"))).state)).toBe('{"w":"u1"}');
      expect(new TextDecoder().decode((await store.getPolicyState(key("u2"))).state)).toBe('{"w":"u2 again"}');
      expect(new TextDecoder().decode((await store.getPolicyState(key(""))).state)).toBe('{"app":1}');
      // u3 comes back (evicting u4, now the least recently used), at a version above any it had.
      expect(await store.swapPolicyState(key("u3"), 1n, json({ w: "u3 back" }), bounds)).toMatchObject({ applied: true, version: 2n, evicted: 1 });
      expect((await store.getPolicyState(key("u4"))).state).toEqual(new Uint8Array());
      // Another application's users are its own.
      expect(await store.swapPolicyState(key("u9", "b"), 0n, json({ w: 1 }), bounds)).toMatchObject({ applied: true, evicted: 0, users: 1 });
    });

    it("bounds an application's user states by bytes, and a fresh uid with every update never holds more than the bound", async () => {
      const store = await open();
      const state = (n: number) => new TextEncoder().encode(JSON.stringify({ pad: "x".repeat(n - 10) }));
      expect(state(40).byteLength).toBe(40);
      const bounds: PolicyStateBounds = { maxUsers: 1000, maxUserBytes: 100 };
      await store.swapPolicyState({ application: "a", uid: "big1" }, 0n, state(40), bounds);
      await store.swapPolicyState({ application: "a", uid: "big2" }, 0n, state(40), bounds);
      expect(await store.swapPolicyState({ application: "a", uid: "big3" }, 0n, state(40), bounds)).toMatchObject({
        applied: true,
        evicted: 1,
        users: 2,
        userBytes: 80,
      });
      expect((await store.getPolicyState({ application: "a", uid: "big1" })).state).toEqual(new Uint8Array());
      // Growing a kept state counts its new size.
      expect(await store.swapPolicyState({ application: "a", uid: "big3" }, 1n, state(70), bounds)).toMatchObject({ evicted: 1, users: 1, userBytes: 70 });

      const byCount: PolicyStateBounds = { maxUsers: 10, maxUserBytes: 1024 * 1024 };
      for (let i = 0; i < 60; i++) {
        // As a router does: read (an unseen uid reads at the application's eviction floor), then compare-and-set.
        const key = { application: "churn", uid: `fresh-${i}` };
        const r = await store.swapPolicyState(key, (await store.getPolicyState(key)).version, state(30), byCount);
        expect(r).toMatchObject({ applied: true, users: Math.min(i + 1, 10), userBytes: 30 * Math.min(i + 1, 10) });
      }
      for (let i = 0; i < 60; i++) {
        expect((await store.getPolicyState({ application: "churn", uid: `fresh-${i}` })).state.byteLength, `fresh-${i}`).toBe(i < 50 ? 0 : 30);
      }
      // Emptied by a clear, the users' states hold no bytes.
      expect(await store.clearPolicyStates("churn")).toBe(10);
      const after = { application: "churn", uid: "after" };
      expect(await store.swapPolicyState(after, (await store.getPolicyState(after)).version, state(30), byCount)).toMatchObject({
        applied: true,
        users: 10,
        userBytes: 30,
      });
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
