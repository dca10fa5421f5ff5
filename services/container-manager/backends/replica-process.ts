import { spawn } from "node:child_process";
import fs from "node:fs";
import type { LaunchCommand } from "./launch.js";
import { processStartTime, signalGroup } from "./process-ledger.js";
import type { ReplicaUser } from "./replica-user.js";

/** How a replica's process ended. `adopted`: not our child, so its exit status is unknown. */
export type ProcessExit = { kind: "exited"; code: number | null; signal: NodeJS.Signals | null } | { kind: "spawn-error"; error: Error } | { kind: "adopted" };

/**
 * A replica's process, whether this manager started it or adopted it from a
 * previous one: its process group can be signalled and its end awaited.
 */
export interface ReplicaProcess {
  readonly pid: number | undefined;
  /** Resolves once, when the process has ended. */
  readonly exited: Promise<ProcessExit>;
  /** Signals its whole process group (anything it started goes too). */
  kill(signal: NodeJS.Signals): void;
  /** Stops watching it without touching it: it runs on for the next manager to adopt. */
  release(): void;
}

/**
 * Starts a replica in its own process group, its stdout and stderr going to
 * the given descriptors (files: it outlives this manager), which are closed
 * here once the child has them. With `user`, it runs as that user and group
 * (and no supplementary group: libuv drops them).
 */
export function spawnReplicaProcess(command: LaunchCommand, stdio: [number, number], user?: ReplicaUser): ReplicaProcess {
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(command.command, command.args, {
      env: command.env,
      cwd: command.cwd,
      stdio: ["ignore", stdio[0], stdio[1]],
      detached: true,
      ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
    });
  } finally {
    for (const fd of stdio) fs.closeSync(fd);
  }
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once("exit", (code, signal) => resolve({ kind: "exited", code, signal }));
    child.once("error", (error) => {
      // A spawn error (e.g. ENOENT) means no process and no "exit" event.
      if (child.pid === undefined) resolve({ kind: "spawn-error", error });
    });
  });
  return {
    pid: child.pid,
    exited,
    kill: (signal) => {
      if (child.pid !== undefined) signalGroup(child.pid, signal);
    },
    release: () => {
      child.removeAllListeners();
      child.unref();
    },
  };
}

/**
 * A replica process a previous manager started: not our child, so its end is
 * seen by polling /proc (same pid, same kernel start time) every `pollMs`.
 */
export function adoptReplicaProcess(pid: number, startTime: string, pollMs = 200): ReplicaProcess {
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    const check = () => {
      if (processStartTime(pid) === startTime) return;
      clearInterval(timer);
      resolve({ kind: "adopted" });
    };
    timer = setInterval(check, pollMs);
    check();
  });
  return {
    pid,
    exited,
    kill: (signal) => {
      // Once the leader is gone its pid cannot lead another group while members of its group remain, so -pid is still
      // its group; a pid reused by another process (a different start time) is left alone.
      if (processStartTime(pid) === startTime || !pidExists(pid)) signalGroup(pid, signal);
    },
    release: () => clearInterval(timer),
  };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
