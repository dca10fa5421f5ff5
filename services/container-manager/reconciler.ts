import type { Model, Replica } from "../../gen/clipper/v1/resources_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import type { Logger } from "../shared/index.js";
import { type ReplicaBackend, type ReplicaSpec, replicaKey } from "./backends/replica-backend.js";

export interface DesiredReplicas {
  spec: ReplicaSpec;
  count: number;
}

export interface ReconcilePlan {
  start: ReplicaSpec[];
  /** Replica ids. */
  stop: string[];
}

/** The replicas the registry asks for, by model version key; versions without a runtime cannot run and are skipped. */
export function desiredFromModels(models: Iterable<Model>): Map<string, DesiredReplicas> {
  const desired = new Map<string, DesiredReplicas>();
  for (const m of models) {
    if (m.runtime === undefined || m.runtime.kind.case === undefined) continue;
    desired.set(replicaKey(m.name, m.version), {
      spec: { modelName: m.name, modelVersion: m.version, inputType: m.inputType, runtime: m.runtime, ...(m.resources ? { resources: m.resources } : {}) },
      count: m.desiredReplicas,
    });
  }
  return desired;
}

/** Which replicas go first when there are too many: broken ones, then the least ready, newest first. */
const stopOrder: Record<number, number> = {
  [ReplicaState.FAILED]: 0,
  [ReplicaState.UNHEALTHY]: 1,
  [ReplicaState.STARTING]: 2,
  [ReplicaState.UNSPECIFIED]: 3,
  [ReplicaState.READY]: 4,
};

/**
 * Compares desired with observed replicas. Pure. STOPPING replicas are on
 * their way out and count for nothing; FAILED ones still count (so a broken
 * model is not restarted in a loop) until they are stopped.
 */
export function planReconcile(desired: ReadonlyMap<string, DesiredReplicas>, observed: readonly Replica[]): ReconcilePlan {
  const byKey = new Map<string, Replica[]>();
  for (const r of observed) {
    if (r.state === ReplicaState.STOPPING) continue;
    const key = replicaKey(r.modelName, r.modelVersion);
    const list = byKey.get(key) ?? [];
    list.push(r);
    byKey.set(key, list);
  }
  const plan: ReconcilePlan = { start: [], stop: [] };
  for (const [key, want] of desired) {
    const have = byKey.get(key) ?? [];
    for (let i = have.length; i < want.count; i++) plan.start.push(want.spec);
    if (have.length > want.count) {
      const ordered = [...have].sort(
        (a, b) => (stopOrder[a.state] ?? 3) - (stopOrder[b.state] ?? 3) || Number(b.startedAtMs - a.startedAtMs) || a.id.localeCompare(b.id),
      );
      plan.stop.push(...ordered.slice(0, have.length - want.count).map((r) => r.id));
    }
  }
  for (const [key, have] of byKey) {
    if (!desired.has(key)) plan.stop.push(...have.map((r) => r.id));
  }
  return plan;
}

/** Converges the backend's replicas on the registry's desired replicas. */
export class Reconciler {
  constructor(
    private readonly backend: ReplicaBackend,
    private readonly logger: Logger,
    /** Whether a replica of this spec can start now (its Python environment is ready); one that cannot is started by a later reconcile. */
    private readonly canStart: (spec: ReplicaSpec) => boolean = () => true,
  ) {}

  reconcile(models: Iterable<Model>): ReconcilePlan {
    const planned = planReconcile(desiredFromModels(models), this.backend.replicas());
    const plan = { ...planned, start: planned.start.filter((spec) => this.canStart(spec)) };
    for (const spec of plan.start) {
      const replica = this.backend.start(spec);
      this.logger.info({ model: spec.modelName, version: spec.modelVersion, replica: replica.id }, "starting replica");
    }
    for (const id of plan.stop) {
      this.logger.info({ replica: id }, "stopping replica");
      this.backend.stop(id).catch((err: unknown) => this.logger.error({ err, replica: id }, "failed to stop replica"));
    }
    return plan;
  }

  /** Stops the FAILED replicas of a version so the next reconcile starts fresh ones (a redeploy or scale retries). */
  async retryFailed(modelName: string, modelVersion: string): Promise<void> {
    const failed = this.backend.replicas().filter((r) => r.modelName === modelName && r.modelVersion === modelVersion && r.state === ReplicaState.FAILED);
    await Promise.all(failed.map((r) => this.backend.stop(r.id)));
  }
}
