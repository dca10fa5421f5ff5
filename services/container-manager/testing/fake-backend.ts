import { clone, create } from "@bufbuild/protobuf";
import { type Replica, ReplicaSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import type { LogLine, ReplicaBackend, ReplicaListener, ReplicaSpec } from "../backends/replica-backend.js";

/** An in-memory ReplicaBackend for unit tests: replicas change state only when the test says so. */
export class FakeBackend implements ReplicaBackend {
  readonly started: ReplicaSpec[] = [];
  readonly stopped: string[] = [];
  private readonly all = new Map<string, Replica>();
  private readonly listeners = new Set<ReplicaListener>();
  private readonly lines = new Map<string, LogLine[]>();
  private nextId = 1;

  start(spec: ReplicaSpec): Replica {
    this.started.push(spec);
    const replica = create(ReplicaSchema, {
      id: `r${this.nextId++}`,
      modelName: spec.modelName,
      modelVersion: spec.modelVersion,
      state: ReplicaState.STARTING,
      startedAtMs: BigInt(this.nextId),
    });
    this.all.set(replica.id, replica);
    this.emit(replica, false);
    return clone(ReplicaSchema, replica);
  }

  async stop(id: string): Promise<void> {
    const replica = this.all.get(id);
    if (replica === undefined) return;
    this.stopped.push(id);
    this.all.delete(id);
    this.emit(replica, true);
  }

  /** Sets a replica's state (and message), as health checks or exits would. */
  set(id: string, state: ReplicaState, message = ""): void {
    const replica = this.all.get(id);
    if (replica === undefined) throw new Error(`no replica ${id}`);
    replica.state = state;
    replica.message = message;
    this.emit(replica, false);
  }

  addLog(id: string, text: string): void {
    const list = this.lines.get(id) ?? [];
    list.push({ timeMs: 0, stream: "stderr", text });
    this.lines.set(id, list);
  }

  replicas(): Replica[] {
    return [...this.all.values()].map((r) => clone(ReplicaSchema, r));
  }

  onChange(listener: ReplicaListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  logs(id: string, tail: number): LogLine[] | undefined {
    if (!this.all.has(id)) return undefined;
    return (this.lines.get(id) ?? []).slice(-tail);
  }

  async close(): Promise<void> {
    for (const id of [...this.all.keys()]) await this.stop(id);
  }

  private emit(replica: Replica, removed: boolean): void {
    for (const l of this.listeners) l(clone(ReplicaSchema, replica), removed);
  }
}
