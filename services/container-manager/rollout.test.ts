import { describe, expect, it } from "vitest";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, type ConnectError } from "../shared/index.js";
import { type RolloutProgress, watchRollout } from "./rollout.js";
import { FakeBackend } from "./testing/fake-backend.js";

const spec = { modelName: "m", modelVersion: "1", inputType: 4, runtime: {} } as unknown as Parameters<FakeBackend["start"]>[0];

async function collect(gen: AsyncGenerator<RolloutProgress, unknown>, onProgress: (p: RolloutProgress) => void = () => {}) {
  const seen: RolloutProgress[] = [];
  for await (const p of gen) {
    seen.push(p);
    onProgress(p);
  }
  return seen;
}

describe("watchRollout", () => {
  it("reports progress until every desired replica is ready", async () => {
    const backend = new FakeBackend();
    const a = backend.start(spec);
    const b = backend.start(spec);
    const seen = await collect(watchRollout({ backend, modelName: "m", modelVersion: "1", desired: 2, timeoutMs: 10_000 }), (p) => {
      const next = p.replicas.find((r) => r.state === ReplicaState.STARTING);
      if (next) setImmediate(() => backend.set(next.id, ReplicaState.READY));
    });
    expect(seen.map((p) => p.ready)).toEqual([0, 1, 2]);
    expect(
      seen
        .at(-1)
        ?.replicas.map((r) => r.id)
        .sort(),
    ).toEqual([a.id, b.id]);
  });

  it("fails with the replica's message when a replica FAILS", async () => {
    const backend = new FakeBackend();
    const a = backend.start(spec);
    const run = collect(watchRollout({ backend, modelName: "m", modelVersion: "1", desired: 1, timeoutMs: 10_000 }), () =>
      setImmediate(() => backend.set(a.id, ReplicaState.FAILED, "exited with code 3; last log lines:\nTraceback")),
    );
    const err = (await run.catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain(`replica ${a.id} of model m:1 failed to start: exited with code 3; last log lines:\nTraceback`);
  });

  it("fails on timeout with the unready replica's last log lines", async () => {
    const backend = new FakeBackend();
    const a = backend.start(spec);
    backend.addLog(a.id, "loading weights...");
    const err = (await collect(watchRollout({ backend, modelName: "m", modelVersion: "1", desired: 1, timeoutMs: 50 })).catch(
      (e: unknown) => e,
    )) as ConnectError;
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("0 of 1 replicas ready after");
    expect(err.rawMessage).toContain(`replica ${a.id} is STARTING; last log lines:`);
    expect(err.rawMessage).toContain("loading weights...");
  });

  it("explains a timeout without replicas with the hint", async () => {
    const backend = new FakeBackend();
    const err = (await collect(
      watchRollout({ backend, modelName: "m", modelVersion: "1", desired: 1, timeoutMs: 20, hint: () => "the registry watch is not connected" }),
    ).catch((e: unknown) => e)) as ConnectError;
    expect(err.rawMessage).toContain("the registry watch is not connected");
  });

  it("waits for extra replicas to go when scaling down", async () => {
    const backend = new FakeBackend();
    const a = backend.start(spec);
    const b = backend.start(spec);
    backend.set(a.id, ReplicaState.READY);
    backend.set(b.id, ReplicaState.READY);
    const seen = await collect(watchRollout({ backend, modelName: "m", modelVersion: "1", desired: 1, timeoutMs: 10_000 }), () => {
      setImmediate(() => void backend.stop(b.id));
    });
    expect(seen.at(-1)?.replicas.map((r) => r.id)).toEqual([a.id]);
  });
});
