import fs from "node:fs";
import path from "node:path";

/**
 * What a later container-manager needs to adopt a replica that outlived the
 * one that started it: where it listens, what it serves, where its output goes.
 */
export interface LedgerReplica {
  modelName: string;
  modelVersion: string;
  /** clipper.common.v1.InputType. */
  inputType: number;
  /** The version's clipper.v1.ModelRuntime as protobuf JSON. */
  runtime: unknown;
  /** host:port of its ModelService (and grpc.health.v1). */
  endpoint: string;
  /** host:port of its own /metrics. */
  metricsEndpoint?: string;
  startedAtMs: number;
  restarts: number;
  /** Its formatted log file (`<data-dir>/logs/<model>-<version>-<replica>.log`). */
  logFile: string;
}

/** One replica process this container-manager started: its process group leader and when the kernel started it. */
export interface LedgerEntry {
  pid: number;
  /** /proc/<pid>/stat starttime: tells the same process from a later one that reuses the pid. */
  startTime: string;
  /** Absent in files written before replicas could be adopted: such a process is only stopped. */
  replica?: LedgerReplica;
}

/** A recorded replica process that still runs (the same process: same pid and start time). */
export interface Leftover extends LedgerEntry {
  replicaId: string;
}

/**
 * The replica processes this container-manager has running, kept in a file
 * (`run/replica-processes.json` in the data directory) so that a container-
 * manager started after one that died (SIGKILL, a crash, a handover) can adopt
 * the healthy ones and stop the rest, and `clipper down` can stop whatever a
 * dead manager left: replicas run in their own process groups and outlive
 * their manager. Linux only (/proc); elsewhere nothing is recorded.
 */
export class ProcessLedger {
  private readonly entries = new Map<string, LedgerEntry>();

  constructor(private readonly file: string) {}

  /** A replica's process started (or was adopted). */
  record(replicaId: string, pid: number, replica?: LedgerReplica, startTime = processStartTime(pid)): void {
    if (startTime === undefined) return;
    this.entries.set(replicaId, replica === undefined ? { pid, startTime } : { pid, startTime, replica });
    this.save();
  }

  /** A replica's process ended. */
  forget(replicaId: string): void {
    if (this.entries.delete(replicaId)) this.save();
  }

  /**
   * The processes the file names that still run, as a previous container-
   * manager left them. Entries whose pid now belongs to another process are
   * dropped. The file is not changed.
   */
  leftovers(): Leftover[] {
    return readLeftovers(this.file);
  }

  /**
   * Stops the process groups of replicas a previous container-manager left
   * running (SIGTERM, SIGKILL after `graceMs`) and empties the file. Returns
   * the pids stopped. Pids now used by other processes are left alone.
   */
  async stopLeftovers(graceMs: number): Promise<number[]> {
    const pids = await stopProcessGroups(this.leftovers(), graceMs);
    this.save();
    return pids;
  }

  private save(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.entries)));
    fs.renameSync(tmp, this.file);
  }
}

/** The ledger of a data directory. */
export function ledgerPath(dataDir: string): string {
  return path.join(dataDir, "run", "replica-processes.json");
}

function readLeftovers(file: string): Leftover[] {
  let previous: Record<string, LedgerEntry>;
  try {
    previous = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, LedgerEntry>;
  } catch {
    return [];
  }
  if (typeof previous !== "object" || previous === null) return [];
  return Object.entries(previous)
    .filter(([, e]) => Number.isInteger(e?.pid) && e.pid > 1 && processStartTime(e.pid) === e.startTime)
    .map(([replicaId, e]) => ({ ...e, replicaId }));
}

/** SIGTERM to each group, SIGKILL to those still there after `graceMs`; resolves with the pids once all are gone. */
export async function stopProcessGroups(processes: readonly Pick<LedgerEntry, "pid" | "startTime">[], graceMs: number): Promise<number[]> {
  const alive = processes.filter((e) => processStartTime(e.pid) === e.startTime);
  for (const e of alive) signalGroup(e.pid, "SIGTERM");
  const running = () => alive.some((e) => processStartTime(e.pid) === e.startTime);
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && running()) await new Promise((resolve) => setTimeout(resolve, 50));
  for (const e of alive) if (processStartTime(e.pid) === e.startTime) signalGroup(e.pid, "SIGKILL");
  // SIGKILL cannot be ignored: this only lets the kernel catch up.
  const killDeadline = Date.now() + 2000;
  while (Date.now() < killDeadline && running()) await new Promise((resolve) => setTimeout(resolve, 20));
  return alive.map((e) => e.pid);
}

/**
 * Stops every replica process the data directory's ledger names that still
 * runs (what `clipper down` does after stopping the services, so that replicas
 * a dead container-manager left do not outlive the system), and empties the
 * ledger. Returns the pids stopped.
 */
export async function stopLeftoverReplicas(dataDir: string, graceMs: number): Promise<number[]> {
  const file = ledgerPath(dataDir);
  if (!fs.existsSync(file)) return [];
  return new ProcessLedger(file).stopLeftovers(graceMs);
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

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone.
  }
}
