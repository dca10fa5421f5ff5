import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ManagementService, type WatchConfigResponse } from "../../gen/clipper/v1/management_service_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, createGrpcTransport, type GrpcTransport, type RunningGrpcServer, registration, startGrpcServer } from "../shared/index.js";
import { LmdbStore } from "./lmdb-store.js";
import { Registry } from "./registry.js";
import { createManagementService } from "./service.js";

const command = { kind: { case: "command" as const, value: { argv: ["true"] } } };

describe("ManagementService over gRPC (lmdb store)", () => {
  let dir: string;
  let registry: Registry;
  let server: RunningGrpcServer;
  let transport: GrpcTransport;
  let client: Client<typeof ManagementService>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "clipper-registry-service-"));
    registry = await Registry.open({ store: LmdbStore.open(join(dir, "registry")) });
    server = await startGrpcServer({ port: 0, reflection: true, services: [registration(ManagementService, createManagementService(registry))] });
    transport = createGrpcTransport({ address: server.address });
    client = createClient(ManagementService, transport);
  });
  afterAll(async () => {
    transport?.close();
    registry?.endWatches();
    await server?.close();
    await registry?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the whole configuration life cycle", async () => {
    const app = await client.createApplication({ name: "svc-app", inputType: InputType.DOUBLES, defaultOutput: "0", sloMicros: 30_000n });
    expect(app.application?.name).toBe("svc-app");
    const created = await client.createModel({ model: { name: "svc-model", version: "v1", inputType: InputType.DOUBLES, runtime: command } });
    expect(created.currentVersion).toBe("v1");
    expect(created.model?.createdAtMs).toBeGreaterThan(0n);
    expect((await client.linkModel({ application: "svc-app", modelName: "svc-model" })).application?.linkedModels).toEqual(["svc-model"]);
    await client.createModel({ model: { name: "svc-model", version: "v2", inputType: InputType.DOUBLES, runtime: command } });
    expect((await client.setModelVersion({ name: "svc-model", version: "v2" })).previousVersion).toBe("v1");
    expect((await client.getModel({ name: "svc-model" })).model?.version).toBe("v2");
    await client.updateModel({ name: "svc-model", version: "v2", desiredReplicas: 2 });
    await client.reportReplicas({
      replicaSet: { modelName: "svc-model", modelVersion: "v2", replicas: [{ id: "r1", endpoint: "127.0.0.1:9", state: ReplicaState.READY }] },
    });
    expect((await client.listReplicas({ modelName: "svc-model" })).replicaSets[0]?.replicas[0]?.modelVersion).toBe("v2");
    expect((await client.listModels({})).models.map((m) => [m.version, m.desiredReplicas])).toEqual([
      ["v1", 0],
      ["v2", 2],
    ]);
    expect((await client.deleteModel({ name: "svc-model" })).deleted.map((k) => k.version)).toEqual(["v1", "v2"]);
    expect((await client.getApplication({ name: "svc-app" })).application?.linkedModels).toEqual([]);
    await client.deleteApplication({ name: "svc-app" });
    expect((await client.listApplications({})).applications).toEqual([]);
  });

  it("carries codes and messages to the client", async () => {
    const cases: Array<[Promise<unknown>, Code, string]> = [
      [client.getApplication({ name: "missing" }), Code.NotFound, 'application "missing" not found'],
      [
        client.createApplication({ name: "x", inputType: InputType.UNSPECIFIED }),
        Code.InvalidArgument,
        "input_type is unspecified: use one of bytes, ints, floats, doubles, strings",
      ],
      [client.createModel({}), Code.InvalidArgument, "model is missing"],
      [client.deleteModel({ name: "nope" }), Code.NotFound, 'model "nope" not found'],
    ];
    for (const [call, code, message] of cases) {
      const err = (await call.catch((e: unknown) => e)) as ConnectError;
      expect(err).toBeInstanceOf(ConnectError);
      expect([err.code, err.rawMessage]).toEqual([code, message]);
    }
  });

  it("streams a snapshot and then changes in revision order", async () => {
    await client.createApplication({ name: "watched", inputType: InputType.STRINGS });
    const abort = new AbortController();
    const events: WatchConfigResponse["event"][] = [];
    const watching = (async () => {
      for await (const res of client.watchConfig({}, { signal: abort.signal })) {
        events.push(res.event);
        if (res.event.case === "snapshot") {
          await client.createModel({ model: { name: "wm", version: "1", inputType: InputType.STRINGS, runtime: command } });
          await client.linkModel({ application: "watched", modelName: "wm" });
        }
        if (events.length === 4) abort.abort();
      }
    })().catch((err: unknown) => {
      if (!abort.signal.aborted) throw err;
    });
    await watching;
    const [first, ...rest] = events;
    expect(first?.case).toBe("snapshot");
    const snapshot = first?.case === "snapshot" ? first.value : undefined;
    expect(snapshot?.applications.map((a) => a.name)).toContain("watched");
    const changes = rest.map((e) => (e.case === "change" ? e.value : undefined));
    expect(changes.map((c) => c?.change.case)).toEqual(["modelUpserted", "currentVersionSet", "applicationUpserted"]);
    expect(changes.map((c) => c?.revision)).toEqual([1n, 2n, 3n].map((d) => (snapshot?.revision ?? 0n) + d));
    await expect.poll(() => registry.watchers).toBe(0);
  });

  it("ends open watches with UNAVAILABLE when the registry shuts down", async () => {
    const stream = client.watchConfig({})[Symbol.asyncIterator]();
    expect((await stream.next()).value?.event.case).toBe("snapshot");
    registry.endWatches();
    const err = (await stream.next().catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.Unavailable);
  });
});
