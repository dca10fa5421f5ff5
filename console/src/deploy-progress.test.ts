import { describe, expect, it } from "vitest";
import type { ModelVersionJson, ReplicaJson } from "../../services/console/console-api.js";
import { deploysInFlight } from "./deploy-progress.js";

const replica = (id: string, state: ReplicaJson["state"], message = ""): ReplicaJson => ({ id, endpoint: "", state, restarts: 0, message, startedAtMs: 1 });
const version = (v: string, desired: number, replicas: ReplicaJson[], current: boolean, createdAtMs: number): ModelVersionJson => ({
  name: "m",
  version: v,
  inputType: "doubles",
  runtime: "command",
  current,
  desiredReplicas: desired,
  batching: { maxBatchSize: 0, maxWaitMicros: null, maxInFlightPerReplica: 0, maxQueueLength: 0, fixedSize: false },
  createdAtMs,
  replicas,
});

describe("deploysInFlight", () => {
  it("leaves out versions whose replicas are all ready, and shows a new version starting beside the one serving", () => {
    const progress = deploysInFlight([
      version("1", 2, [replica("a", "ready"), replica("b", "ready")], true, 10),
      version("2", 3, [replica("c", "ready"), replica("d", "starting")], false, 20),
    ]);
    expect(progress).toHaveLength(1);
    expect(progress[0]).toMatchObject({ model: "m", version: "2", desired: 3, phase: "starting", current: false, serving: "1", reasons: [] });
    expect(progress[0]?.counts).toMatchObject({ ready: 1, starting: 1, failed: 0 });
  });

  it("says a deploy failed and why, from its failed replicas' messages", () => {
    const [progress] = deploysInFlight([
      version(
        "3",
        2,
        [
          replica("e", "failed", "exited with code 3 before it was ready (3 times)"),
          replica("f", "failed", "exited with code 3 before it was ready (3 times)"),
        ],
        false,
        30,
      ),
    ]);
    expect(progress).toMatchObject({ phase: "failed", reasons: ["exited with code 3 before it was ready (3 times)"], serving: undefined });
  });

  it("shows a scale down until the extra replicas are gone, and a version with no replica reported yet", () => {
    const [down] = deploysInFlight([version("1", 1, [replica("a", "ready"), replica("b", "stopping")], true, 10)]);
    expect(down).toMatchObject({ phase: "stopping", counts: expect.objectContaining({ ready: 1, stopping: 1 }) });
    const [fresh] = deploysInFlight([version("4", 1, [], false, 40)]);
    expect(fresh).toMatchObject({ phase: "starting", counts: expect.objectContaining({ ready: 0 }) });
  });
});
