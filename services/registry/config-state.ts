import { clone, create } from "@bufbuild/protobuf";
import {
  type Application,
  ApplicationSchema,
  type ConfigChange,
  type ConfigSnapshot,
  ConfigSnapshotSchema,
  type Model,
  ModelSchema,
  type ReplicaSet,
  ReplicaSetSchema,
} from "../../gen/clipper/v1/resources_pb.js";

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The registry's configuration in memory: what the store holds, indexed for
 * the registry's rules. Changed only by `apply`, so it always equals the
 * store's contents at `revision`. Getters return copies so callers cannot
 * change it behind the store's back.
 */
export class ConfigState {
  revision = 0n;
  private readonly applications = new Map<string, Application>();
  /** model name -> version -> model */
  private readonly models = new Map<string, Map<string, Model>>();
  private readonly currentVersions = new Map<string, string>();
  /** `${name}/${version}` -> replica set (never empty) */
  private readonly replicaSets = new Map<string, ReplicaSet>();

  static fromSnapshot(snapshot: ConfigSnapshot): ConfigState {
    const state = new ConfigState();
    for (const a of snapshot.applications) state.applications.set(a.name, a);
    for (const m of snapshot.models) state.putModel(m);
    for (const c of snapshot.currentVersions) state.currentVersions.set(c.modelName, c.version);
    for (const r of snapshot.replicaSets) state.replicaSets.set(replicaKey(r.modelName, r.modelVersion), r);
    state.revision = snapshot.revision;
    return state;
  }

  apply(change: ConfigChange): void {
    const c = change.change;
    switch (c.case) {
      case "applicationUpserted":
        this.applications.set(c.value.name, c.value);
        break;
      case "applicationDeleted":
        this.applications.delete(c.value);
        break;
      case "modelUpserted":
        this.putModel(c.value);
        break;
      case "modelDeleted": {
        const versions = this.models.get(c.value.modelName);
        versions?.delete(c.value.version);
        if (versions?.size === 0) this.models.delete(c.value.modelName);
        break;
      }
      case "currentVersionSet":
        this.currentVersions.set(c.value.modelName, c.value.version);
        break;
      case "currentVersionCleared":
        this.currentVersions.delete(c.value);
        break;
      case "replicasReported": {
        const key = replicaKey(c.value.modelName, c.value.modelVersion);
        if (c.value.replicas.length === 0) this.replicaSets.delete(key);
        else this.replicaSets.set(key, c.value);
        break;
      }
      case undefined:
        throw new Error(`config change at revision ${change.revision} has no content`);
    }
    this.revision = change.revision;
  }

  application(name: string): Application | undefined {
    const a = this.applications.get(name);
    return a && clone(ApplicationSchema, a);
  }

  get applicationCount(): number {
    return this.applications.size;
  }

  /** Model versions of every model together. */
  get modelVersionCount(): number {
    let n = 0;
    for (const versions of this.models.values()) n += versions.size;
    return n;
  }

  applicationList(): Application[] {
    return [...this.applications.values()].sort((a, b) => byName(a.name, b.name)).map((a) => clone(ApplicationSchema, a));
  }

  model(name: string, version: string): Model | undefined {
    const m = this.models.get(name)?.get(version);
    return m && clone(ModelSchema, m);
  }

  /** Every version of the model, oldest first. */
  versions(name: string): Model[] {
    return [...(this.models.get(name)?.values() ?? [])]
      .sort((a, b) => (a.createdAtMs === b.createdAtMs ? byName(a.version, b.version) : a.createdAtMs < b.createdAtMs ? -1 : 1))
      .map((m) => clone(ModelSchema, m));
  }

  modelNames(): string[] {
    return [...this.models.keys()].sort(byName);
  }

  currentVersion(name: string): string | undefined {
    return this.currentVersions.get(name);
  }

  replicaSet(name: string, version: string): ReplicaSet | undefined {
    const r = this.replicaSets.get(replicaKey(name, version));
    return r && clone(ReplicaSetSchema, r);
  }

  replicaSetList(): ReplicaSet[] {
    return [...this.replicaSets.entries()].sort(([a], [b]) => byName(a, b)).map(([, r]) => clone(ReplicaSetSchema, r));
  }

  snapshot(): ConfigSnapshot {
    return create(ConfigSnapshotSchema, {
      revision: this.revision,
      applications: this.applicationList(),
      models: this.modelNames().flatMap((n) => this.versions(n)),
      currentVersions: [...this.currentVersions.entries()].sort(([a], [b]) => byName(a, b)).map(([modelName, version]) => ({ modelName, version })),
      replicaSets: this.replicaSetList(),
    });
  }

  private putModel(m: Model): void {
    let versions = this.models.get(m.name);
    if (!versions) {
      versions = new Map();
      this.models.set(m.name, versions);
    }
    versions.set(m.version, m);
  }
}

const replicaKey = (name: string, version: string) => `${name}/${version}`;
