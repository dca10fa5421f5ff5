import fs from "node:fs";
import path from "node:path";

/** One replica process this container-manager started: its process group leader and when the kernel started it. */
interface Entry {
  pid: number;
  /** /proc/<pid>/stat starttime: tells the same process from a later one that reuses the pid. */
  startTime: string;
}

/**
 * The replica processes this container-manager has running, kept in a file
 * (`run/replica-processes.json` in the data directory) so that a container-
 * manager started after one that was SIGKILLed can stop what the dead one
 * left: replicas run in their own process groups and outlive their manager.
 * Linux only (/proc); elsewhere nothing is recorded and nothing is stopped.
 */
export class ProcessLedger {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly file: string) {}

  /** A replica's process started. */
  record(replicaId: string, pid: number): void {
    const startTime = processStartTime(pid);
    if (startTime === undefined) return;
    this.entries.set(replicaId, { pid, startTime });
    this.save();
  }

  /** A replica's process ended. */
  forget(replicaId: string): void {
    if (this.entries.delete(replicaId)) this.save();
  }

  /**
   * Stops the process groups of replicas a previous container-manager left
   * running (SIGTERM, SIGKILL after `graceMs`) and empties the file. Returns
   * the pids stopped. Pids now used by other processes are left alone.
   */
  async stopLeftovers(graceMs: number): Promise<number[]> {
    let previous: Record<string, Entry>;
    try {
      previous = JSON.parse(fs.readFileSync(this.file, "utf8")) as Record<string, Entry>;
    } catch {
      return [];
    }
    const alive = Object.values(previous).filter((e) => Number.isInteger(e.pid) && e.pid > 1 && processStartTime(e.pid) === e.startTime);
    for (const e of alive) signalGroup(e.pid, "SIGTERM");
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && alive.some((e) => processStartTime(e.pid) === e.startTime)) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const e of alive) if (processStartTime(e.pid) === e.startTime) signalGroup(e.pid, "SIGKILL");
    this.save();
    return alive.map((e) => e.pid);
  }

  private save(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.entries)));
    fs.renameSync(tmp, this.file);
  }
}

/** The kernel's start time of a process (field 22 of /proc/<pid>/stat), or undefined if it is gone or there is no /proc. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself contain spaces and parentheses; starttime is the 20th of them.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // A zombie has exited: only its parent's wait is missing.
    if (fields[0] === "Z") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone.
  }
}
