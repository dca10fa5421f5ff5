import { type Replica, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, failedPrecondition } from "../shared/index.js";
import { formatLogLine, type ReplicaBackend } from "./backends/replica-backend.js";

export interface RolloutOptions {
  backend: Pick<ReplicaBackend, "replicas" | "onChange" | "logs">;
  modelName: string;
  modelVersion: string;
  desired: number;
  timeoutMs: number;
  /** Aborts the wait, e.g. when the caller cancels. */
  signal?: AbortSignal;
  /** Log lines of each unready replica quoted in a timeout error. */
  logLines?: number;
  /** Why no replica may have appeared yet, added to a timeout error (e.g. the registry watch is down). */
  hint?: () => string | undefined;
}

export interface RolloutProgress {
  ready: number;
  desired: number;
  replicas: Replica[];
}

/**
 * Follows a model version's replicas until `desired` of them are READY (and
 * no extra ones remain), yielding progress on every change. Ends with
 * FailedPrecondition, quoting the replica's last log lines, when a replica
 * FAILS or the timeout passes: never a silent hang.
 */
export async function* watchRollout(options: RolloutOptions): AsyncGenerator<RolloutProgress, Replica[]> {
  const { backend, modelName, modelVersion, desired } = options;
  const label = `${modelName}:${modelVersion}`;
  let wake: (() => void) | undefined;
  let changed = true;
  const off = backend.onChange((r) => {
    if (r.modelName !== modelName || r.modelVersion !== modelVersion) return;
    changed = true;
    wake?.();
  });
  const deadline = Date.now() + options.timeoutMs;
  let lastSignature = "";
  try {
    for (;;) {
      if (options.signal?.aborted) throw new ConnectError(`stopped waiting for ${label}: the call was cancelled`, Code.Canceled);
      changed = false;
      const replicas = backend.replicas().filter((r) => r.modelName === modelName && r.modelVersion === modelVersion && r.state !== ReplicaState.STOPPING);
      const failed = replicas.find((r) => r.state === ReplicaState.FAILED);
      if (failed !== undefined) throw failedPrecondition(`replica ${failed.id} of model ${label} failed to start: ${failed.message}`);
      const ready = replicas.filter((r) => r.state === ReplicaState.READY).length;
      const signature = replicas.map((r) => `${r.id}=${r.state}/${r.restarts}`).join(",");
      if (signature !== lastSignature) {
        lastSignature = signature;
        yield { ready, desired, replicas };
      }
      if (ready >= desired && replicas.length <= desired) return replicas;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw failedPrecondition(timeoutMessage(options, replicas, ready));
      if (!changed) await waitForChange(remaining, options.signal, (fn) => (wake = fn));
      wake = undefined;
    }
  } finally {
    off();
  }
}

function waitForChange(timeoutMs: number, signal: AbortSignal | undefined, setWake: (fn: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    signal?.addEventListener("abort", done, { once: true });
    setWake(done);
  });
}

function timeoutMessage(options: RolloutOptions, replicas: Replica[], ready: number): string {
  const seconds = Math.round(options.timeoutMs / 100) / 10;
  const parts = [`model ${options.modelName}:${options.modelVersion}: ${ready} of ${options.desired} replicas ready after ${seconds} s`];
  if (replicas.length === 0) {
    const hint = options.hint?.();
    parts.push(hint ?? "no replica was started");
  }
  for (const r of replicas) {
    if (r.state === ReplicaState.READY) continue;
    const lines = (options.backend.logs(r.id, options.logLines ?? 20) ?? []).map(formatLogLine);
    parts.push(
      `replica ${r.id} is ${ReplicaState[r.state]}${r.message !== "" ? ` (${r.message})` : ""}; last log lines:\n${lines.length > 0 ? lines.join("\n") : "(none)"}`,
    );
  }
  return parts.join("; ");
}
