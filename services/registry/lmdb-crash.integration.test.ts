import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { LmdbStore } from "./lmdb-store.js";
import { Registry } from "./registry.js";

const root = mkdtempSync(join(tmpdir(), "clipper-lmdb-crash-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Runs the crash writer until it has committed `commits` times, then SIGKILLs it mid-loop. */
async function writeThenKill(dir: string, commits: number): Promise<number> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "testing", "crash-writer.ts"), dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, "exit");
  let last = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`crash writer made only ${last} commits in 20 s: ${stderr}`)), 20_000);
      child.stdout.on("data", (d: Buffer) => {
        for (const m of d.toString().matchAll(/committed (\d+)/g)) last = Number(m[1]);
        if (last >= commits) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`crash writer exited early with ${code}: ${stderr}`));
      });
    });
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
  return last;
}

describe("lmdb store durability", () => {
  it("reopens consistent after the writer is SIGKILLed mid-write, twice", async () => {
    const dir = join(root, "killed");
    for (const commits of [30, 60]) {
      const acknowledged = await writeThenKill(dir, commits);
      const store = LmdbStore.open(dir);
      const snap = await store.load();
      await store.close();
      const apps = snap.applications.map((a) => Number(a.name.slice(1))).sort((a, b) => a - b);
      // Nothing half-written: revision and records agree, and no acknowledged commit is lost.
      expect(snap.revision).toBe(BigInt(2 * apps.length));
      expect(snap.models).toHaveLength(apps.length);
      expect(apps).toEqual(Array.from({ length: apps.length }, (_, i) => i + 1));
      expect(apps.length).toBeGreaterThanOrEqual(acknowledged);
    }
  });

  it("keeps a registry's configuration across close and reopen", async () => {
    const dir = join(root, "restart");
    const first = await Registry.open({ store: LmdbStore.open(dir) });
    await first.createApplication({
      $typeName: "clipper.v1.CreateApplicationRequest",
      name: "a",
      inputType: InputType.BYTES,
      defaultOutput: "d",
      sloMicros: 7n,
      description: "",
      cacheEnabled: false,
      defaultOnOverload: false,
    });
    await first.createModel({
      $typeName: "clipper.v1.CreateModelRequest",
      model: {
        $typeName: "clipper.v1.Model",
        name: "m",
        version: "1",
        inputType: InputType.BYTES,
        runtime: {
          $typeName: "clipper.v1.ModelRuntime",
          kind: { case: "nodeModule", value: { $typeName: "clipper.v1.NodeModuleRuntime", modulePath: "/m.ts" } },
        },
        maxBatchSize: 0,
        labels: {},
        desiredReplicas: 1,
        createdAtMs: 0n,
      },
      setCurrent: false,
    });
    await first.linkModel("a", "m");
    const before = first.watch();
    before.changes.end();
    await first.close();
    const second = await Registry.open({ store: LmdbStore.open(dir) });
    const after = second.watch();
    after.changes.end();
    expect(after.snapshot).toEqual(before.snapshot);
    expect(second.getApplication("a").linkedModels).toEqual(["m"]);
    await second.close();
  });
});
