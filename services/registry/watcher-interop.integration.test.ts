import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { createLogger, type RunningGrpcServer, registration, startGrpcServer, viewFromSnapshot, watchConfig } from "../shared/index.js";
import { MemoryStore } from "./memory-store.js";
import { Registry } from "./registry.js";
import { createManagementService } from "./service.js";

const command = {
  $typeName: "clipper.v1.ModelRuntime" as const,
  kind: { case: "command" as const, value: { $typeName: "clipper.v1.CommandRuntime" as const, argv: ["true"], env: {}, workingDir: "" } },
};

describe("the shared ConfigWatcher following this registry", () => {
  let registry: Registry;
  let server: RunningGrpcServer;
  beforeAll(async () => {
    registry = await Registry.open({ store: new MemoryStore() });
    server = await startGrpcServer({ port: 0, services: [registration(ManagementService, createManagementService(registry))] });
  });
  afterAll(async () => {
    registry?.endWatches();
    await server?.close();
    await registry?.close();
  });

  it("ends at the same view as a fresh snapshot after a series of writes", async () => {
    const watcher = watchConfig({ registry: server.address, logger: createLogger({ service: "test", level: "silent" }) });
    try {
      await watcher.ready;
      await registry.createApplication({
        $typeName: "clipper.v1.CreateApplicationRequest",
        name: "a",
        inputType: InputType.INTS,
        defaultOutput: "",
        sloMicros: 0n,
        description: "",
        cacheEnabled: false,
        defaultOnOverload: false,
      });
      const model = {
        $typeName: "clipper.v1.Model" as const,
        name: "m",
        version: "1",
        inputType: InputType.INTS,
        runtime: command,
        maxBatchSize: 0,
        labels: {},
        desiredReplicas: 1,
        createdAtMs: 0n,
      };
      await registry.createModel({ $typeName: "clipper.v1.CreateModelRequest", model, setCurrent: false });
      await registry.createModel({ $typeName: "clipper.v1.CreateModelRequest", model: { ...model, version: "2" }, setCurrent: true });
      await registry.linkModel("a", "m");
      await registry.reportReplicas({
        $typeName: "clipper.v1.ReplicaSet",
        modelName: "m",
        modelVersion: "2",
        replicas: [
          {
            $typeName: "clipper.v1.Replica",
            id: "r",
            modelName: "m",
            modelVersion: "2",
            endpoint: "127.0.0.1:1",
            state: ReplicaState.READY,
            restarts: 0,
            message: "",
            startedAtMs: 0n,
          },
        ],
      });
      await registry.deleteModel("m", "1");
      const { snapshot, changes } = registry.watch();
      changes.end();
      await expect.poll(() => watcher.view().revision).toBe(snapshot.revision);
      expect(watcher.view()).toEqual(viewFromSnapshot(snapshot));
    } finally {
      watcher.close();
    }
  });
});
