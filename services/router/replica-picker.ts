import { type Replica, ReplicaState, type ReplicaSet } from "../../gen/clipper/v1/resources_pb.js";

/** Picks the replica of a model version that gets the next batch. */
export interface ReplicaPicker {
  pick(modelVersionKey: string, replicas: ReplicaSet | undefined): Replica | undefined;
}

/** Round-robin among the READY replicas of each model version. */
export class RoundRobinReplicaPicker implements ReplicaPicker {
  private readonly next = new Map<string, number>();

  pick(modelVersionKey: string, replicas: ReplicaSet | undefined): Replica | undefined {
    const ready = replicas?.replicas.filter((r) => r.state === ReplicaState.READY && r.endpoint !== "") ?? [];
    if (ready.length === 0) return undefined;
    const turn = this.next.get(modelVersionKey) ?? 0;
    this.next.set(modelVersionKey, (turn + 1) % ready.length);
    return ready[turn % ready.length];
  }

  /** Forgets the counters of model versions no longer configured, so the map stays bounded. */
  retain(modelVersionKeys: ReadonlySet<string>): void {
    for (const key of this.next.keys()) if (!modelVersionKeys.has(key)) this.next.delete(key);
  }
}
