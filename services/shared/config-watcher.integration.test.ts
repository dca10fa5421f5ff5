import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import type { WatchConfigResponseSchema } from "../../gen/clipper/v1/management_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { ConfigChangeSchema } from "../../gen/clipper/v1/resources_pb.js";
import { Backoff } from "./backoff.js";
import { applyConfigChange, emptyConfigView } from "./config-view.js";
import { type ConfigWatcher, watchConfig } from "./config-watcher.js";
import { type RunningGrpcServer, registration, startGrpcServer } from "./grpc-server.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";
import { createLogger } from "./logger.js";

const logger = createLogger({ service: "test", level: "silent" });

describe("applyConfigChange", () => {
  it("upserts and deletes without touching the old view", () => {
    const v0 = emptyConfigView();
    const v1 = applyConfigChange(v0, create(ConfigChangeSchema, { revision: 1n, change: { case: "applicationUpserted", value: { name: "a" } } }));
    const v2 = applyConfigChange(v1, create(ConfigChangeSchema, { revision: 2n, change: { case: "applicationDeleted", value: "a" } }));
    expect(v0.applications.size).toBe(0);
    expect(v1.applications.get("a")?.name).toBe("a");
    expect(v2.applications.has("a")).toBe(false);
    expect(v2.revision).toBe(2n);
  });
});

describe("watchConfig", () => {
  let server: RunningGrpcServer | undefined;
  let watcher: ConfigWatcher | undefined;
  afterEach(async () => {
    watcher?.close();
    await server?.close(100);
  });

  it("applies the snapshot and changes, and reconnects for a fresh snapshot after the stream ends", async () => {
    let connections = 0;
    server = await startGrpcServer({
      port: 0,
      services: [
        registration(ManagementService, {
          async *watchConfig(): AsyncIterable<MessageInitShape<typeof WatchConfigResponseSchema>> {
            connections++;
            const revision = BigInt(connections * 10);
            yield { event: { case: "snapshot", value: { revision, applications: [{ name: "app", inputType: InputType.DOUBLES }] } } };
            yield {
              event: {
                case: "change",
                value: { revision: revision + 1n, change: { case: "currentVersionSet", value: { modelName: "m", version: String(connections) } } },
              },
            };
          },
        }),
      ],
    });
    watcher = watchConfig({ registry: server.address, logger, backoff: new Backoff({ initialMs: 10, maxMs: 20, jitter: 0 }) });
    await watcher.ready;
    await waitFor(() => watcher!.view().currentVersions.get("m") === "2");
    expect(watcher.view().applications.get("app")?.inputType).toBe(InputType.DOUBLES);
    expect(connections).toBeGreaterThanOrEqual(2);
  });
});

describe("watchConfig after a registry restart", () => {
  const servers: RunningGrpcServer[] = [];
  let watcher: ConfigWatcher | undefined;
  let transport: GrpcTransport | undefined;
  afterEach(async () => {
    watcher?.close();
    transport?.close();
    for (const s of servers.splice(0)) await s.close(0);
  });

  /** A registry whose watch sends one snapshot and stays open. */
  const registry = (port: number) =>
    startGrpcServer({
      port,
      services: [
        registration(ManagementService, {
          async *watchConfig(_req, ctx): AsyncIterable<MessageInitShape<typeof WatchConfigResponseSchema>> {
            yield { event: { case: "snapshot", value: { revision: 1n, applications: [{ name: "app", inputType: InputType.DOUBLES }] } } };
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          },
        }),
      ],
    }).then((s) => {
      servers.push(s);
      return s;
    });

  it("watches a registry that was away for seconds again within 2 s of its return, on the process's own channel and default backoff", async () => {
    const first = await registry(0);
    const port = Number(first.address.split(":").at(-1));
    // As the gateway and the router do: one channel to the registry with default options, handed to the watcher.
    transport = createGrpcTransport({ address: first.address });
    watcher = watchConfig({ registry: first.address, logger, client: createClient(ManagementService, transport) });
    await watcher.ready;
    await first.close(0);
    await waitFor(() => !watcher!.connected());
    // Long enough for both backoffs (the watcher's and grpc-js's channel's) to grow past several seconds before the fix.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    await registry(port);
    const back = Date.now();
    await waitFor(() => watcher!.connected(), 10_000);
    expect(Date.now() - back).toBeLessThan(2000);
  }, 30_000);
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
