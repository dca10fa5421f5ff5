import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ModelRuntimeSchema, type Replica } from "../../../gen/clipper/v1/resources_pb.js";
import { ConnectError, type Logger, replicaEndpoint } from "../../shared/index.js";
import { RotatingLogFile, readLogFileTail } from "../log-buffer.js";
import { type LaunchPaths, launchCommand } from "./launch.js";
import { type OutputFiles, OutputTail, openOutputForProcess, outputFilesFor } from "./output-files.js";
import { type LedgerReplica, type Leftover, ledgerPath, ProcessLedger, stopProcessGroups } from "./process-ledger.js";
import { formatMiB, residentBytes } from "./process-memory.js";
import { formatLogLine, type ReplicaSpec } from "./replica-backend.js";
import { adoptReplicaProcess, type ProcessExit, type ReplicaProcess, spawnReplicaProcess } from "./replica-process.js";
import {
  answersHealth,
  DEFAULT_SUPERVISION,
  type LaunchOutcome,
  ReplicaSupervisor,
  SupervisedBackend,
  type SupervisedReplica,
  type SupervisionOptions,
} from "./replica-supervisor.js";
import type { ReplicaUser } from "./replica-user.js";

export interface LocalProcessBackendOptions extends SupervisionOptions {
  paths: LaunchPaths;
  logger: Logger;
  logFileMaxBytes?: number;
  /** Where PATH, HOME and LANG for the children come from. */
  parentEnv?: NodeJS.ProcessEnv;
  /**
   * A replica whose resident memory (VmRSS of its process) exceeds this many
   * bytes is killed and restarted; checked with each health check. 0: no limit.
   */
  memoryLimitBytes?: number;
  /**
   * Run every replica as this (unprivileged) user, with its HOME, rather than
   * as the manager's own user (`--replica-user`; needs the manager to be root).
   */
  replicaUser?: ReplicaUser;
}

/** Every default in one place (those of supervision in replica-supervisor.ts). */
export const DEFAULT_LOCAL_PROCESS_OPTIONS = {
  ...DEFAULT_SUPERVISION,
  logFileMaxBytes: 10 * 1024 * 1024,
  memoryLimitBytes: 0,
};

const MAX_LOG_LINE_CHARS = 4096;
/** A replica's output files are emptied once this much of them has been copied into its log. */
const OUTPUT_TRUNCATE_BYTES = 1024 * 1024;

/** What this backend keeps of a replica beside what the supervisor keeps. */
interface LocalReplicaFiles {
  readonly file: RotatingLogFile;
  /** Where its process writes stdout and stderr; followed into its log and `file` by `tail`. */
  readonly output: OutputFiles;
  tail?: OutputTail;
}

type LocalReplica = SupervisedReplica<ReplicaProcess, LocalReplicaFiles>;

/** What adoptLeftoverReplicas did. */
export interface AdoptionResult {
  /** Replica ids adopted: healthy processes a previous manager left. */
  adopted: string[];
  /** Pids stopped: recorded processes that did not answer their health check (or could not be adopted). */
  stopped: number[];
}

/**
 * Runs each replica as a child process (in its own process group) on a free
 * loopback port, health-checks it with grpc.health.v1, restarts it with
 * backoff when it exits, and captures its output (replica-supervisor.ts keeps
 * them running; this backend launches, signals and follows the processes).
 * The output goes to files (output-files.ts), not pipes, so that replicas
 * outlive their manager and the next one adopts them (adoptLeftoverReplicas;
 * a release() leaves processes, output files and ledger entries for it).
 */
export class LocalProcessBackend extends SupervisedBackend<ReplicaProcess, LocalReplicaFiles> {
  private readonly logDir: string;
  private readonly ledger: ProcessLedger;
  protected readonly supervisor: ReplicaSupervisor<ReplicaProcess, LocalReplicaFiles>;
  private readonly settings: typeof DEFAULT_LOCAL_PROCESS_OPTIONS & LocalProcessBackendOptions;
  private readonly parentEnv: NodeJS.ProcessEnv;

  constructor(private readonly options: LocalProcessBackendOptions) {
    super();
    this.settings = { ...DEFAULT_LOCAL_PROCESS_OPTIONS, ...options };
    this.parentEnv =
      options.replicaUser === undefined ? (options.parentEnv ?? process.env) : { ...(options.parentEnv ?? process.env), HOME: options.replicaUser.home };
    this.logDir = path.join(options.paths.dataDir, "logs");
    fs.mkdirSync(this.logDir, { recursive: true });
    this.ledger = new ProcessLedger(ledgerPath(options.paths.dataDir));
    this.supervisor = new ReplicaSupervisor({
      ...this.settings,
      runner: {
        launch: (r, cancelled) => this.launch(r, cancelled),
        started: (r, proc) => {
          if (proc.pid !== undefined) this.ledger.record(r.status.id, proc.pid, this.ledgerEntry(r));
        },
        signal: (_r, proc, signal) => proc.kill(signal),
        ended: (r, proc) => {
          this.ledger.forget(r.status.id);
          // Take any processes the replica started down with it.
          proc.kill("SIGKILL");
          // Its last words, an unfinished last line included.
          r.own.tail?.drain(true);
        },
        beforeHealthCheck: (r, proc) => {
          // Its output so far is in the buffer before its state changes (a deploy that fails quotes it).
          r.own.tail?.drain();
          return this.overMemoryLimit(r, proc);
        },
        release: async (r) => {
          r.own.tail?.close(false);
          r.run?.release();
          await r.own.file.close();
        },
        removed: async (r) => {
          // Gone for good: its output is in its log now.
          r.own.tail?.remove();
          await r.own.file.close();
        },
      },
      onLogLine: (r, line) => r.own.file.write(formatLogLine(line)),
    });
  }

  /**
   * Takes over the replicas a previous container-manager with this data
   * directory left running (it was killed, crashed, or handed over): each
   * recorded process that still runs and answers its health check is adopted
   * as it is (same id, endpoint and restart count: the registry and the router
   * see no change) and followed from then on like one started here; the others
   * are stopped (SIGTERM, SIGKILL after the grace), as their ports and memory
   * would otherwise stay taken for good. Call before starting any replica.
   */
  async adoptLeftoverReplicas(): Promise<AdoptionResult> {
    const leftovers = this.ledger.leftovers();
    // All stay on record until adopted or stopped, so that a manager killed meanwhile loses none of them.
    for (const l of leftovers) this.ledger.record(l.replicaId, l.pid, l.replica, l.startTime);
    const checked = await Promise.all(
      leftovers.map(async (l) => ({
        leftover: l,
        spec: adoptableSpec(l),
        healthy: await answersHealth(l.replica?.endpoint, Math.min(this.settings.healthTimeoutMs, 1000)),
      })),
    );
    const adopted: string[] = [];
    const rejected: Leftover[] = [];
    for (const { leftover, spec, healthy } of checked) {
      if (healthy && spec !== undefined && leftover.replica !== undefined && !this.supervisor.has(leftover.replicaId)) {
        this.adopt(leftover, leftover.replica, spec);
        adopted.push(leftover.replicaId);
      } else {
        rejected.push(leftover);
      }
    }
    const stopped = await stopProcessGroups(rejected, this.settings.stopGraceMs);
    for (const l of rejected) this.ledger.forget(l.replicaId);
    if (adopted.length > 0) this.options.logger.info({ replicas: adopted }, "adopted healthy replicas left running by a previous container-manager");
    if (stopped.length > 0)
      this.options.logger.warn({ pids: stopped }, "stopped replicas left running by a previous container-manager that did not answer their health check");
    return { adopted, stopped };
  }

  start(spec: ReplicaSpec): Replica {
    return this.supervisor.start(spec, (id) => {
      const logFile = this.logFile(spec, id);
      return { file: new RotatingLogFile(logFile, this.settings.logFileMaxBytes), output: outputFilesFor(logFile) };
    });
  }

  /** The process id of a replica's current process, for operators and fault tests. */
  pid(id: string): number | undefined {
    return this.supervisor.get(id)?.run?.pid;
  }

  private async launch(r: LocalReplica, cancelled: AbortSignal): Promise<LaunchOutcome<ReplicaProcess>> {
    let port: number;
    let metricsPort: number;
    let command: ReturnType<typeof launchCommand>;
    try {
      port = await freePort();
      metricsPort = await freePort();
      command = launchCommand(r.spec, port, this.options.paths, this.parentEnv, metricsPort);
    } catch (err) {
      return { kind: "failed", reason: `cannot launch: ${err instanceof ConnectError ? err.rawMessage : String(err)}` };
    }
    if (cancelled.aborted) return { kind: "abandoned" };
    if (command.note !== undefined) this.supervisor.log(r, "manager", command.note);
    const user = this.options.replicaUser;
    if (user !== undefined) this.supervisor.log(r, "manager", `running as user ${user.name} (uid ${user.uid}, gid ${user.gid}; --replica-user)`);
    this.supervisor.log(r, "manager", `starting ${[command.command, ...command.args].join(" ")} on port ${port}`);
    const metricsEndpoint = `127.0.0.1:${metricsPort}`;
    // Operators find where to scrape a replica here (GetLogs), in clipper_replica_info and in run/replica-targets.json.
    this.supervisor.log(r, "manager", `metrics endpoint http://${metricsEndpoint}/metrics (CLIPPER_METRICS_PORT=${metricsPort})`);
    let proc: ReplicaProcess;
    try {
      proc = spawnReplicaProcess(command, openOutputForProcess(r.own.output), user);
    } catch (err) {
      return { kind: "failed", reason: `cannot launch: ${String(err)}` };
    }
    r.own.tail ??= this.followOutput(r);
    return {
      kind: "started",
      run: proc,
      endpoint: replicaEndpoint(`127.0.0.1:${port}`, command.protocol),
      metricsEndpoint,
      exited: proc.exited.then((exit) => (exit.kind === "spawn-error" ? `could not start: ${exit.error.message}` : (r.killReason ?? describeExit(exit)))),
    };
  }

  /** A recorded process that still runs and answered its health check: managed from now on as if started here. */
  private adopt(l: Leftover, recorded: LedgerReplica, spec: ReplicaSpec): void {
    const logFile = this.logFile(spec, l.replicaId);
    this.supervisor.adopt(
      {
        id: l.replicaId,
        spec,
        own: { file: new RotatingLogFile(logFile, this.settings.logFileMaxBytes), output: outputFilesFor(logFile) },
        endpoint: recorded.endpoint,
        ...(recorded.metricsEndpoint === undefined ? {} : { metricsEndpoint: recorded.metricsEndpoint }),
        startedAtMs: recorded.startedAtMs,
        restarts: recorded.restarts,
        message: `adopted from a previous container-manager (pid ${l.pid})`,
        note: `adopted by container-manager pid ${process.pid}: process ${l.pid} on ${recorded.endpoint} still runs and is healthy`,
        // What GetLogs showed before the previous manager died, then what the replica wrote since (its output files).
        history: readLogFileTail(logFile, this.settings.logBufferLines),
      },
      (r) => {
        r.own.tail = this.followOutput(r);
        const proc = adoptReplicaProcess(l.pid, l.startTime);
        this.ledger.record(l.replicaId, l.pid, this.ledgerEntry(r), l.startTime);
        return { run: proc, exited: proc.exited.then((exit) => r.killReason ?? describeExit(exit)) };
      },
    );
  }

  private followOutput(r: LocalReplica): OutputTail {
    return new OutputTail(r.own.output, (stream, text) => this.supervisor.log(r, stream, text), {
      maxLineChars: MAX_LOG_LINE_CHARS,
      truncateAtBytes: OUTPUT_TRUNCATE_BYTES,
      pollIntervalMs: this.settings.healthIntervalMs,
    });
  }

  private logFile(spec: Pick<ReplicaSpec, "modelName" | "modelVersion">, id: string): string {
    return path.join(this.logDir, `${spec.modelName}-${spec.modelVersion}-${id}.log`);
  }

  /** What the ledger keeps so that a later manager can adopt the replica. */
  private ledgerEntry(r: LocalReplica): LedgerReplica {
    return {
      modelName: r.spec.modelName,
      modelVersion: r.spec.modelVersion,
      inputType: r.spec.inputType,
      runtime: toJson(ModelRuntimeSchema, r.spec.runtime),
      endpoint: r.status.endpoint,
      ...(r.metricsEndpoint === undefined ? {} : { metricsEndpoint: r.metricsEndpoint }),
      startedAtMs: Number(r.status.startedAtMs),
      restarts: r.status.restarts,
      logFile: r.own.file.path,
    };
  }

  /** Why a replica above the memory limit must be killed (its exit then restarts it), or undefined. */
  private overMemoryLimit(r: LocalReplica, proc: ReplicaProcess): string | undefined {
    const limit = this.settings.memoryLimitBytes;
    if (limit <= 0 || proc.pid === undefined) return undefined;
    const rss = residentBytes(proc.pid);
    if (rss === undefined || rss <= limit) return undefined;
    this.options.logger.warn(
      { replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, rssBytes: rss, limitBytes: limit },
      "replica over its memory limit",
    );
    return `killed for exceeding the memory limit: resident memory ${formatMiB(rss)} > limit ${formatMiB(limit)}`;
  }
}

function describeExit(exit: ProcessExit): string {
  if (exit.kind === "adopted") return "exited (its exit status is unknown: it was adopted from a previous container-manager)";
  if (exit.kind === "spawn-error") return `could not start: ${exit.error.message}`;
  return exit.signal !== null ? `killed by signal ${exit.signal}` : `exited with code ${exit.code}`;
}

/** The spec a recorded replica was started with, if the ledger holds one that parses. */
function adoptableSpec(l: Leftover): ReplicaSpec | undefined {
  const recorded = l.replica;
  if (recorded === undefined) return undefined;
  try {
    return {
      modelName: recorded.modelName,
      modelVersion: recorded.modelVersion,
      inputType: recorded.inputType,
      runtime: fromJson(ModelRuntimeSchema, recorded.runtime as JsonValue),
    };
  } catch {
    return undefined;
  }
}

/** A port free on 127.0.0.1 right now; the child binds it moments later (a clash makes it exit and restart). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
