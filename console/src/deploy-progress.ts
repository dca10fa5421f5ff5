/**
 * A deploy in flight, read from the registry's state the page already follows (the watch stream): a model
 * version whose replicas are not all ready yet, or one that failed to start. Pure, so it is unit-tested.
 */
import type { ModelVersionJson, ReplicaStateName } from "../../services/console/console-api.js";

export interface DeployProgress {
  model: string;
  version: string;
  desired: number;
  /** Replicas by state: ready, starting, unhealthy, failed, stopping. */
  counts: Record<ReplicaStateName, number>;
  /** "starting" while replicas come up, "failed" once any replica gave up, "stopping" while scaling down. */
  phase: "starting" | "failed" | "stopping";
  /** The failed (or else unhealthy) replicas' last messages: why they did not start. */
  reasons: string[];
  /** Whether applications already use this version, and which version serves meanwhile if not. */
  current: boolean;
  serving: string | undefined;
  createdAtMs: number;
}

const NO_REPLICAS: Record<ReplicaStateName, number> = { starting: 0, ready: 0, unhealthy: 0, failed: 0, stopping: 0, unknown: 0 };

/** The versions with a deploy or a scale in flight, newest first; a version whose replicas are all ready is not one. */
export function deploysInFlight(models: readonly ModelVersionJson[]): DeployProgress[] {
  const out: DeployProgress[] = [];
  for (const m of models) {
    const counts = { ...NO_REPLICAS };
    for (const r of m.replicas) counts[r.state]++;
    const settled = counts.ready === m.desiredReplicas && counts.ready === m.replicas.length;
    if (settled) continue;
    const failed = m.replicas.filter((r) => r.state === "failed");
    const troubled = failed.length > 0 ? failed : m.replicas.filter((r) => r.state === "unhealthy");
    const phase = failed.length > 0 ? "failed" : m.replicas.length > m.desiredReplicas && counts.ready >= m.desiredReplicas ? "stopping" : "starting";
    out.push({
      model: m.name,
      version: m.version,
      desired: m.desiredReplicas,
      counts,
      phase,
      reasons: [...new Set(troubled.map((r) => r.message).filter((text) => text !== ""))],
      current: m.current,
      serving: m.current ? undefined : models.find((other) => other.name === m.name && other.current)?.version,
      createdAtMs: m.createdAtMs,
    });
  }
  return out.sort((a, b) => b.createdAtMs - a.createdAtMs);
}
