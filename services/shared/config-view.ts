import type { Application, ConfigChange, ConfigSnapshot, Model, ReplicaSet } from "../../gen/clipper/v1/resources_pb.js";

/** The registry's configuration at one revision, immutable: every change makes a new view. */
export interface ConfigView {
  readonly revision: bigint;
  /** By application name. */
  readonly applications: ReadonlyMap<string, Application>;
  /** By `modelKey(name, version)`. */
  readonly models: ReadonlyMap<string, Model>;
  /** Model name to its current version. */
  readonly currentVersions: ReadonlyMap<string, string>;
  /** By `modelKey(name, version)`. */
  readonly replicaSets: ReadonlyMap<string, ReplicaSet>;
}

export const modelKey = (name: string, version: string) => `${name}:${version}`;

export function emptyConfigView(): ConfigView {
  return { revision: 0n, applications: new Map(), models: new Map(), currentVersions: new Map(), replicaSets: new Map() };
}

export function viewFromSnapshot(s: ConfigSnapshot): ConfigView {
  return {
    revision: s.revision,
    applications: new Map(s.applications.map((a) => [a.name, a])),
    models: new Map(s.models.map((m) => [modelKey(m.name, m.version), m])),
    currentVersions: new Map(s.currentVersions.map((c) => [c.modelName, c.version])),
    replicaSets: new Map(s.replicaSets.map((r) => [modelKey(r.modelName, r.modelVersion), r])),
  };
}

/** The view after one change. Pure: the input view is left as it was. */
export function applyConfigChange(view: ConfigView, change: ConfigChange): ConfigView {
  const next = { ...view, revision: change.revision };
  const c = change.change;
  switch (c.case) {
    case "applicationUpserted":
      return { ...next, applications: withEntry(view.applications, c.value.name, c.value) };
    case "applicationDeleted":
      return { ...next, applications: withoutEntry(view.applications, c.value) };
    case "modelUpserted":
      return { ...next, models: withEntry(view.models, modelKey(c.value.name, c.value.version), c.value) };
    case "modelDeleted": {
      const key = modelKey(c.value.modelName, c.value.version);
      return { ...next, models: withoutEntry(view.models, key), replicaSets: withoutEntry(view.replicaSets, key) };
    }
    case "currentVersionSet":
      return { ...next, currentVersions: withEntry(view.currentVersions, c.value.modelName, c.value.version) };
    case "currentVersionCleared":
      return { ...next, currentVersions: withoutEntry(view.currentVersions, c.value) };
    case "replicasReported": {
      // An empty report means no replicas; drop the entry so a live view equals a fresh snapshot.
      const key = modelKey(c.value.modelName, c.value.modelVersion);
      const replicaSets = c.value.replicas.length === 0 ? withoutEntry(view.replicaSets, key) : withEntry(view.replicaSets, key, c.value);
      return { ...next, replicaSets };
    }
    default:
      return next;
  }
}

function withEntry<V>(map: ReadonlyMap<string, V>, key: string, value: V): Map<string, V> {
  const copy = new Map(map);
  copy.set(key, value);
  return copy;
}

function withoutEntry<V>(map: ReadonlyMap<string, V>, key: string): Map<string, V> {
  const copy = new Map(map);
  copy.delete(key);
  return copy;
}
