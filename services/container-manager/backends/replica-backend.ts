import type { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import type { ModelResources, ModelRuntime, Replica } from "../../../gen/clipper/v1/resources_pb.js";

/** Everything needed to start one replica of a model version. */
export interface ReplicaSpec {
  modelName: string;
  modelVersion: string;
  inputType: InputType;
  runtime: ModelRuntime;
  /** What one replica asks for and may use; the Kubernetes backend makes them the container's requests and limits. */
  resources?: ModelResources;
}

export type LogStream = "stdout" | "stderr" | "manager";

/** One captured line of a replica's output. */
export interface LogLine {
  timeMs: number;
  stream: LogStream;
  text: string;
}

/** Called with a snapshot whenever a replica's state changes; `removed` once it is gone. */
export type ReplicaListener = (replica: Replica, removed: boolean) => void;

/**
 * Where replicas run. The local backend runs child processes; a Kubernetes
 * backend would map a model version to a Deployment and a replica to a pod
 * (start = scale up, stop = delete that pod and scale down, readiness from
 * the same grpc health check). Callers see only this interface.
 *
 * A backend keeps a replica running on its own (restarts with backoff) and
 * marks it FAILED when it cannot start; it never removes a replica unless
 * asked to stop it.
 */
export interface ReplicaBackend {
  /** Starts a replica; returns its first snapshot (STARTING) at once. */
  start(spec: ReplicaSpec): Replica;
  /** Stops a replica (its state is STOPPING from the moment this is called) and forgets it. Unknown ids are ignored. */
  stop(id: string): Promise<void>;
  /** Snapshots of every replica, STOPPING ones included. */
  replicas(): Replica[];
  onChange(listener: ReplicaListener): () => void;
  /** The last `tail` captured lines of a replica, or undefined if it is unknown. */
  logs(id: string, tail: number): LogLine[] | undefined;
  /** Stops every replica. */
  close(): Promise<void>;
}

export const replicaKey = (modelName: string, modelVersion: string) => `${modelName}:${modelVersion}`;

export function formatLogLine(line: LogLine): string {
  return `${new Date(line.timeMs).toISOString()} ${line.stream} ${line.text}`;
}
