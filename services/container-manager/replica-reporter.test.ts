import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ReplicaSchema, type ReplicaSet, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { createLogger, notFound, unavailable } from "../shared/index.js";
import { ReplicaReporter } from "./replica-reporter.js";

const logger = createLogger({ service: "test", level: "silent" });
const replicas = [
  create(ReplicaSchema, { id: "a", modelName: "m", modelVersion: "1", state: ReplicaState.READY }),
  create(ReplicaSchema, { id: "b", modelName: "m", modelVersion: "2", state: ReplicaState.STARTING }),
];

describe("ReplicaReporter", () => {
  it("reports each dirty version once with its current replicas, coalescing changes", async () => {
    const sent: ReplicaSet[] = [];
    let release: () => void = () => {};
    const blocked = new Promise<void>((r) => (release = r));
    const reporter = new ReplicaReporter({
      report: async (set) => {
        sent.push(set);
        if (sent.length === 1) await blocked;
      },
      replicas: () => replicas,
      logger,
    });
    reporter.markDirty("m", "1");
    reporter.markDirty("m", "2");
    reporter.markDirty("m", "2");
    reporter.markDirty("gone", "1");
    release();
    await reporter.idle();
    expect(sent.map((s) => `${s.modelName}:${s.modelVersion}=${s.replicas.map((r) => r.id).join(",")}`)).toEqual(["m:1=a", "m:2=b", "gone:1="]);
  });

  it("retries a failed report and drops one for a deleted model", async () => {
    let calls = 0;
    const sent: string[] = [];
    const reporter = new ReplicaReporter({
      report: async (set) => {
        calls++;
        if (set.modelName === "gone") throw notFound("no such model");
        if (calls === 1) throw unavailable("registry down");
        sent.push(set.modelVersion);
      },
      replicas: () => replicas,
      logger,
      retryDelayMs: 10,
    });
    reporter.markDirty("m", "1");
    reporter.markDirty("gone", "1");
    await reporter.idle();
    await new Promise((r) => setTimeout(r, 50));
    await reporter.idle();
    expect(sent).toEqual(["1"]);
    expect(calls).toBe(3);
    reporter.close();
  });
});
