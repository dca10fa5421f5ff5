import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConfigSnapshotSchema, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { type GrpcTransport, viewFromSnapshot } from "../shared/index.js";
import { ReplicaClientPool, replicaEndpoints } from "./model-clients.js";

describe("ReplicaClientPool", () => {
  it("keeps one transport per endpoint and closes those that leave the configuration", () => {
    const opened: string[] = [];
    const closed: string[] = [];
    const pool = new ReplicaClientPool((address) => {
      opened.push(address);
      return { address, close: () => closed.push(address) } as unknown as GrpcTransport;
    });
    pool.clientFor("a:1");
    pool.clientFor("a:1");
    pool.clientFor("b:1");
    expect(opened).toEqual(["a:1", "b:1"]);
    pool.retain(new Set(["b:1"]));
    expect(closed).toEqual(["a:1"]);
    expect(pool.endpoints()).toEqual(["b:1"]);
    pool.close();
    expect(closed).toEqual(["a:1", "b:1"]);
  });

  it("lists every endpoint named by the replica sets", () => {
    const view = viewFromSnapshot(
      create(ConfigSnapshotSchema, {
        replicaSets: [
          { modelName: "m", modelVersion: "1", replicas: [{ endpoint: "a:1", state: ReplicaState.READY }, { endpoint: "a:2", state: ReplicaState.FAILED }] },
          { modelName: "n", modelVersion: "1", replicas: [{ endpoint: "", state: ReplicaState.STARTING }] },
        ],
      }),
    );
    expect([...replicaEndpoints(view)]).toEqual(["a:1", "a:2"]);
  });
});
