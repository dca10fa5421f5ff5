import { clone, create, type MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { ManagementService, type WatchConfigResponseSchema } from "../../../gen/clipper/v1/management_service_pb.js";
import { type ConfigChange, ConfigChangeSchema, ConfigSnapshotSchema, type Model, ModelSchema, type ReplicaSet } from "../../../gen/clipper/v1/resources_pb.js";
import { alreadyExists, invalidArgument, notFound, type RunningGrpcServer, registration, startGrpcServer } from "../../shared/index.js";

/**
 * A minimal in-memory ManagementService for the container-manager's tests:
 * models, current versions, replica reports and WatchConfig. Not the registry.
 */
export class FakeRegistry {
  readonly models = new Map<string, Model>();
  readonly current = new Map<string, string>();
  readonly reports: ReplicaSet[] = [];
  private revision = 0n;
  private readonly subscribers = new Set<(change: ConfigChange) => void>();

  start(): Promise<RunningGrpcServer> {
    return startGrpcServer({ port: 0, services: [registration(ManagementService, this.impl())] });
  }

  latestReport(name: string, version: string): ReplicaSet | undefined {
    return this.reports.filter((r) => r.modelName === name && r.modelVersion === version).at(-1);
  }

  private publish(change: MessageInitShape<typeof ConfigChangeSchema>): void {
    this.revision++;
    const full = create(ConfigChangeSchema, { ...change, revision: this.revision });
    for (const s of this.subscribers) s(full);
  }

  private setCurrent(name: string, version: string): void {
    this.current.set(name, version);
    this.publish({ change: { case: "currentVersionSet", value: { modelName: name, version } } });
  }

  private impl(): Partial<ServiceImpl<typeof ManagementService>> {
    const key = (name: string, version: string) => `${name}:${version}`;
    const get = (name: string, version: string) => {
      const m = this.models.get(key(name, version));
      if (m === undefined) throw notFound(`model ${name}:${version} not found`);
      return m;
    };
    return {
      createModel: (req) => {
        if (req.model === undefined) throw invalidArgument("model is missing");
        const k = key(req.model.name, req.model.version);
        if (this.models.has(k)) throw alreadyExists(`model ${k} already exists`);
        const model = clone(ModelSchema, req.model);
        this.models.set(k, model);
        this.publish({ change: { case: "modelUpserted", value: model } });
        if (req.setCurrent || !this.current.has(model.name)) this.setCurrent(model.name, model.version);
        return { model, currentVersion: this.current.get(model.name) ?? "" };
      },
      getModel: (req) => ({ model: get(req.name, req.version || (this.current.get(req.name) ?? "")), currentVersion: this.current.get(req.name) ?? "" }),
      updateModel: (req) => {
        const model = clone(ModelSchema, get(req.name, req.version));
        if (req.desiredReplicas !== undefined) model.desiredReplicas = req.desiredReplicas;
        this.models.set(key(req.name, req.version), model);
        this.publish({ change: { case: "modelUpserted", value: model } });
        return { model };
      },
      setModelVersion: (req) => {
        get(req.name, req.version);
        const previous = this.current.get(req.name) ?? "";
        this.setCurrent(req.name, req.version);
        return { previousVersion: previous };
      },
      reportReplicas: (req) => {
        if (req.replicaSet === undefined) throw invalidArgument("replica_set is missing");
        this.reports.push(req.replicaSet);
        this.publish({ change: { case: "replicasReported", value: req.replicaSet } });
        return {};
      },
      watchConfig: (_req, ctx) => this.watch(ctx.signal),
    };
  }

  private async *watch(signal: AbortSignal): AsyncGenerator<MessageInitShape<typeof WatchConfigResponseSchema>> {
    const queue: ConfigChange[] = [];
    let wake: (() => void) | undefined;
    const subscriber = (c: ConfigChange) => {
      // A test registry sees few changes; the bound only guards against a stuck client.
      if (queue.length < 10_000) queue.push(c);
      wake?.();
    };
    this.subscribers.add(subscriber);
    try {
      yield {
        event: {
          case: "snapshot",
          value: create(ConfigSnapshotSchema, {
            revision: this.revision,
            models: [...this.models.values()],
            currentVersions: [...this.current].map(([modelName, version]) => ({ modelName, version })),
          }),
        },
      };
      while (!signal.aborted) {
        const next = queue.shift();
        if (next !== undefined) {
          yield { event: { case: "change", value: next } };
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        wake = undefined;
      }
    } finally {
      this.subscribers.delete(subscriber);
    }
  }
}
