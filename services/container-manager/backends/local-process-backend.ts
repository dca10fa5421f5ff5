import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { clone, create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { ModelRuntimeSchema, type Replica, ReplicaSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { ConnectError, createGrpcTransport, type GrpcTransport, type Logger, replicaEndpoint, replicaTransport, speaksConnect } from "../../shared/index.js";
import { LogBuffer, RotatingLogFile, readLogFileTail } from "../log-buffer.js";
import { defaultRestartPolicy, RestartPolicy, type RestartPolicyOptions } from "../restart-policy.js";
import { type LaunchPaths, launchCommand } from "./launch.js";
import { type OutputFiles, OutputTail, openOutputForProcess, outputFilesFor } from "./output-files.js";
import { type LedgerReplica, type Leftover, ledgerPath, ProcessLedger, stopProcessGroups } from "./process-ledger.js";
import { formatMiB, residentBytes } from "./process-memory.js";
import { formatLogLine, type LogLine, type LogStream, type ReplicaBackend, type ReplicaListener, type ReplicaSpec } from "./replica-backend.js";
import { adoptReplicaProcess, type ProcessExit, type ReplicaProcess, spawnReplicaProcess } from "./replica-process.js";
import type { ReplicaUser } from "./replica-user.js";

export interface LocalProcessBackendOptions {
  paths: LaunchPaths;
  logger: Logger;
  restartPolicy?: RestartPolicyOptions;
  /** Time between health checks of one replica. */
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  /** Failed checks in a row after which a READY replica is UNHEALTHY. */
  unhealthyAfterChecks?: number;
  /**
   * Failed checks in a row after which an UNHEALTHY replica is killed and
   * restarted (a hung process: Kubernetes' liveness probe). 0: never.
   */
  restartAfterChecks?: number;
  /** A replica not ready this long after its start is killed (and counts as a failed start). */
  startTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping. */
  stopGraceMs?: number;
  logBufferLines?: number;
  logFileMaxBytes?: number;
  /** Log lines quoted in a FAILED replica's message. */
  failureLogLines?: number;
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

const MAX_LOG_LINE_CHARS = 4096;
/** A replica's output files are emptied once this much of them has been copied into its log. */
const OUTPUT_TRUNCATE_BYTES = 1024 * 1024;

interface LocalReplica {
  readonly status: Replica;
  readonly spec: ReplicaSpec;
  readonly policy: RestartPolicy;
  readonly logs: LogBuffer;
  readonly file: RotatingLogFile;
  /** Where its process writes stdout and stderr; followed into `logs` and `file` by `tail`. */
  readonly output: OutputFiles;
  tail?: OutputTail;
  /** The current process, started here or adopted from a previous manager. */
  proc?: ReplicaProcess;
  transport?: GrpcTransport;
  /** host:port of the runtime's own /metrics (CLIPPER_METRICS_PORT). */
  metricsEndpoint?: string;
  launchedAtMs: number;
  readyThisRun: boolean;
  failedChecks: number;
  timer?: NodeJS.Timeout;
  killReason?: string;
  /** Why the previous process ended, kept in the message once the replacement is READY. */
  lastExit?: string;
  stopping?: Promise<void>;
}

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
 * backoff when it exits, and captures its output. The output goes to files
 * (output-files.ts), not pipes, so that replicas outlive their manager and
 * the next one adopts them (adoptLeftoverReplicas).
 */
export class LocalProcessBackend implements ReplicaBackend {
  private readonly all = new Map<string, LocalReplica>();
  private readonly listeners = new Set<ReplicaListener>();
  private readonly logDir: string;
  private readonly ledger: ProcessLedger;
  private readonly settings: Required<Omit<LocalProcessBackendOptions, "paths" | "logger" | "replicaUser">>;

  constructor(private readonly options: LocalProcessBackendOptions) {
    this.settings = {
      restartPolicy: options.restartPolicy ?? defaultRestartPolicy,
      healthIntervalMs: options.healthIntervalMs ?? 500,
      healthTimeoutMs: options.healthTimeoutMs ?? 1000,
      unhealthyAfterChecks: options.unhealthyAfterChecks ?? 3,
      restartAfterChecks: options.restartAfterChecks ?? 10,
      startTimeoutMs: options.startTimeoutMs ?? 120_000,
      stopGraceMs: options.stopGraceMs ?? 5000,
      logBufferLines: options.logBufferLines ?? 1000,
      logFileMaxBytes: options.logFileMaxBytes ?? 10 * 1024 * 1024,
      failureLogLines: options.failureLogLines ?? 20,
      parentEnv:
        options.replicaUser === undefined ? (options.parentEnv ?? process.env) : { ...(options.parentEnv ?? process.env), HOME: options.replicaUser.home },
      memoryLimitBytes: options.memoryLimitBytes ?? 0,
    };
    this.logDir = path.join(options.paths.dataDir, "logs");
    fs.mkdirSync(this.logDir, { recursive: true });
    this.ledger = new ProcessLedger(ledgerPath(options.paths.dataDir));
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
      leftovers.map(async (l) => ({ leftover: l, spec: adoptableSpec(l), healthy: await this.answersHealth(l.replica?.endpoint) })),
    );
    const adopted: string[] = [];
    const rejected: Leftover[] = [];
    for (const { leftover, spec, healthy } of checked) {
      if (healthy && spec !== undefined && leftover.replica !== undefined && !this.all.has(leftover.replicaId)) {
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

  /**
   * Stops managing every replica without stopping any (a handover: the next
   * container-manager on this data directory adopts them). Their processes,
   * output files and ledger entries stay; nothing is reported removed.
   */
  async release(): Promise<void> {
    const all = [...this.all.values()];
    this.all.clear();
    for (const r of all) {
      clearTimeout(r.timer);
      r.tail?.close(false);
      r.proc?.release();
      r.transport?.close();
      await r.file.close();
    }
  }

  start(spec: ReplicaSpec): Replica {
    const id = randomBytes(4).toString("hex");
    const status = create(ReplicaSchema, {
      id,
      modelName: spec.modelName,
      modelVersion: spec.modelVersion,
      state: ReplicaState.STARTING,
      startedAtMs: BigInt(Date.now()),
    });
    const logFile = this.logFile(spec, id);
    const replica: LocalReplica = {
      status,
      spec,
      policy: new RestartPolicy(this.settings.restartPolicy),
      logs: new LogBuffer(this.settings.logBufferLines),
      file: new RotatingLogFile(logFile, this.settings.logFileMaxBytes),
      output: outputFilesFor(logFile),
      launchedAtMs: Date.now(),
      readyThisRun: false,
      failedChecks: 0,
    };
    this.all.set(id, replica);
    this.emit(replica, false);
    void this.launch(replica);
    return clone(ReplicaSchema, status);
  }

  stop(id: string): Promise<void> {
    const r = this.all.get(id);
    if (r === undefined) return Promise.resolve();
    r.stopping ??= this.terminate(r);
    return r.stopping;
  }

  replicas(): Replica[] {
    return [...this.all.values()].map((r) => clone(ReplicaSchema, r.status));
  }

  onChange(listener: ReplicaListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  logs(id: string, tail: number): LogLine[] | undefined {
    return this.all.get(id)?.logs.tail(tail);
  }

  /** host:port where a replica's runtime serves /metrics, once launched. */
  metricsEndpoint(id: string): string | undefined {
    return this.all.get(id)?.metricsEndpoint;
  }

  /** The process id of a replica's current process, for operators and fault tests. */
  pid(id: string): number | undefined {
    return this.all.get(id)?.proc?.pid;
  }

  async close(): Promise<void> {
    await Promise.all([...this.all.keys()].map((id) => this.stop(id)));
  }

  private async launch(r: LocalReplica): Promise<void> {
    if (r.stopping) return;
    let port: number;
    let metricsPort: number;
    let command: ReturnType<typeof launchCommand>;
    try {
      port = await freePort();
      metricsPort = await freePort();
      command = launchCommand(r.spec, port, this.options.paths, this.settings.parentEnv, metricsPort);
    } catch (err) {
      this.fail(r, `cannot launch: ${err instanceof ConnectError ? err.rawMessage : String(err)}`);
      return;
    }
    if (r.stopping) return;
    if (command.note !== undefined) this.log(r, "manager", command.note);
    const user = this.options.replicaUser;
    if (user !== undefined) this.log(r, "manager", `running as user ${user.name} (uid ${user.uid}, gid ${user.gid}; --replica-user)`);
    this.log(r, "manager", `starting ${[command.command, ...command.args].join(" ")} on port ${port}`);
    r.metricsEndpoint = `127.0.0.1:${metricsPort}`;
    // Operators find where to scrape a replica here (GetLogs), in clipper_replica_info and in run/replica-targets.json.
    this.log(r, "manager", `metrics endpoint http://${r.metricsEndpoint}/metrics (CLIPPER_METRICS_PORT=${metricsPort})`);
    let proc: ReplicaProcess;
    try {
      proc = spawnReplicaProcess(command, openOutputForProcess(r.output), user);
    } catch (err) {
      this.fail(r, `cannot launch: ${String(err)}`);
      return;
    }
    r.tail ??= this.followOutput(r);
    r.proc = proc;
    r.launchedAtMs = Date.now();
    r.readyThisRun = false;
    r.failedChecks = 0;
    delete r.killReason;
    r.status.endpoint = replicaEndpoint(`127.0.0.1:${port}`, command.protocol);
    r.status.startedAtMs = BigInt(r.launchedAtMs);
    if (proc.pid !== undefined) this.ledger.record(r.status.id, proc.pid, this.ledgerEntry(r));
    void proc.exited.then((exit) => this.onExit(r, proc, exit));
    this.setState(r, ReplicaState.STARTING, "");
    r.transport = replicaTransport(r.status.endpoint);
    this.scheduleHealthCheck(r, proc);
  }

  /** A recorded process that still runs and answered its health check: managed from now on as if started here. */
  private adopt(l: Leftover, recorded: LedgerReplica, spec: ReplicaSpec): void {
    const logFile = this.logFile(spec, l.replicaId);
    const status = create(ReplicaSchema, {
      id: l.replicaId,
      modelName: spec.modelName,
      modelVersion: spec.modelVersion,
      state: ReplicaState.READY,
      endpoint: recorded.endpoint,
      startedAtMs: BigInt(recorded.startedAtMs),
      restarts: recorded.restarts,
      message: `adopted from a previous container-manager (pid ${l.pid})`,
    });
    const r: LocalReplica = {
      status,
      spec,
      policy: new RestartPolicy(this.settings.restartPolicy),
      logs: new LogBuffer(this.settings.logBufferLines),
      file: new RotatingLogFile(logFile, this.settings.logFileMaxBytes),
      output: outputFilesFor(logFile),
      launchedAtMs: recorded.startedAtMs,
      readyThisRun: true,
      failedChecks: 0,
      ...(recorded.metricsEndpoint === undefined ? {} : { metricsEndpoint: recorded.metricsEndpoint }),
    };
    // What GetLogs showed before the previous manager died, then what the replica wrote since (its output files).
    for (const line of readLogFileTail(logFile, this.settings.logBufferLines)) r.logs.push(line.stream, line.text, line.timeMs);
    this.all.set(l.replicaId, r);
    this.log(r, "manager", `adopted by container-manager pid ${process.pid}: process ${l.pid} on ${recorded.endpoint} still runs and is healthy`);
    r.tail = this.followOutput(r);
    const proc = adoptReplicaProcess(l.pid, l.startTime);
    r.proc = proc;
    this.ledger.record(l.replicaId, l.pid, this.ledgerEntry(r), l.startTime);
    void proc.exited.then((exit) => this.onExit(r, proc, exit));
    r.transport = replicaTransport(recorded.endpoint);
    this.emit(r, false);
    this.scheduleHealthCheck(r, proc);
  }

  /** Whether a grpc.health.v1 server answers SERVING at `endpoint`, within a few tries (about 1.5 s). */
  private async answersHealth(endpoint: string | undefined): Promise<boolean> {
    if (endpoint === undefined || endpoint === "") return false;
    const transport = speaksConnect(endpoint)
      ? replicaTransport(endpoint)
      : createGrpcTransport({
          address: endpoint,
          channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 200, "grpc.use_local_subchannel_pool": 1 },
        });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 250));
        try {
          const res = await createClient(Health, transport).check({ service: "" }, { timeoutMs: Math.min(this.settings.healthTimeoutMs, 1000) });
          if (res.status === HealthCheckResponse_ServingStatus.SERVING) return true;
        } catch {
          // not (yet) answering
        }
      }
      return false;
    } finally {
      transport.close();
    }
  }

  private followOutput(r: LocalReplica): OutputTail {
    return new OutputTail(r.output, (stream, text) => this.log(r, stream, text), {
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
      logFile: r.file.path,
    };
  }

  private scheduleHealthCheck(r: LocalReplica, proc: ReplicaProcess): void {
    r.timer = setTimeout(() => void this.checkHealth(r, proc), this.settings.healthIntervalMs);
  }

  private async checkHealth(r: LocalReplica, proc: ReplicaProcess): Promise<void> {
    if (r.proc !== proc || r.stopping || r.transport === undefined) return;
    // Its output so far is in the buffer before its state changes (a deploy that fails quotes it).
    r.tail?.drain();
    if (this.overMemoryLimit(r, proc)) return;
    let problem: string | undefined;
    try {
      const res = await createClient(Health, r.transport).check({ service: "" }, { timeoutMs: this.settings.healthTimeoutMs });
      if (res.status !== HealthCheckResponse_ServingStatus.SERVING) problem = `health status ${HealthCheckResponse_ServingStatus[res.status]}`;
    } catch (err) {
      problem = err instanceof ConnectError ? err.rawMessage : String(err);
    }
    if (r.proc !== proc || r.stopping) return;
    if (problem === undefined) {
      r.failedChecks = 0;
      r.readyThisRun = true;
      if (r.status.state !== ReplicaState.READY) this.setState(r, ReplicaState.READY, r.lastExit === undefined ? "" : `ready; restarted after: ${r.lastExit}`);
    } else {
      r.failedChecks++;
      if (r.status.state === ReplicaState.READY && r.failedChecks >= this.settings.unhealthyAfterChecks) {
        this.setState(r, ReplicaState.UNHEALTHY, `health check failed ${r.failedChecks} times: ${problem}`);
      } else if (r.readyThisRun && this.settings.restartAfterChecks > 0 && r.failedChecks >= this.settings.restartAfterChecks) {
        // Alive but not answering: its exit restarts it under the restart policy, like any crash.
        r.killReason = `killed after ${r.failedChecks} failed health checks in a row (last: ${problem})`;
        proc.kill("SIGKILL");
        return;
      } else if (!r.readyThisRun && Date.now() - r.launchedAtMs > this.settings.startTimeoutMs) {
        r.killReason = `not ready within ${Math.round(this.settings.startTimeoutMs / 1000)} s (last health check: ${problem})`;
        proc.kill("SIGKILL");
        return;
      }
    }
    this.scheduleHealthCheck(r, proc);
  }

  /** Kills a replica above the memory limit (its exit then restarts it); true when it did. */
  private overMemoryLimit(r: LocalReplica, proc: ReplicaProcess): boolean {
    const limit = this.settings.memoryLimitBytes;
    if (limit <= 0 || proc.pid === undefined) return false;
    const rss = residentBytes(proc.pid);
    if (rss === undefined || rss <= limit) return false;
    r.killReason = `killed for exceeding the memory limit: resident memory ${formatMiB(rss)} > limit ${formatMiB(limit)}`;
    this.options.logger.warn(
      { replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, rssBytes: rss, limitBytes: limit },
      "replica over its memory limit",
    );
    proc.kill("SIGKILL");
    return true;
  }

  private onExit(r: LocalReplica, proc: ReplicaProcess, exit: ProcessExit): void {
    if (r.proc !== proc) return;
    delete r.proc;
    this.ledger.forget(r.status.id);
    clearTimeout(r.timer);
    r.transport?.close();
    delete r.transport;
    // Take any processes the replica started down with it.
    proc.kill("SIGKILL");
    // Its last words, an unfinished last line included.
    r.tail?.drain(true);
    if (r.stopping) return;
    const what = exit.kind === "spawn-error" ? `could not start: ${exit.error.message}` : (r.killReason ?? describeExit(exit));
    this.log(r, "manager", what);
    r.lastExit = what;
    const decision = r.policy.onExit(Date.now() - r.launchedAtMs, r.readyThisRun);
    if (decision.action === "fail") {
      this.fail(r, `${what}; it stopped ${decision.startFailures} times in a row before becoming ready`);
      return;
    }
    this.setState(r, ReplicaState.UNHEALTHY, `${what}; restarting in ${decision.delayMs} ms`);
    r.timer = setTimeout(() => {
      r.status.restarts++;
      void this.launch(r);
    }, decision.delayMs);
  }

  private fail(r: LocalReplica, reason: string): void {
    this.log(r, "manager", `replica failed: ${reason}`);
    const lines = r.logs.tail(this.settings.failureLogLines).map(formatLogLine);
    this.setState(r, ReplicaState.FAILED, `${reason}; last log lines:\n${lines.join("\n")}`);
    this.options.logger.warn({ replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, reason }, "replica failed");
  }

  private async terminate(r: LocalReplica): Promise<void> {
    clearTimeout(r.timer);
    this.setState(r, ReplicaState.STOPPING, "stopping");
    const proc = r.proc;
    if (proc !== undefined) {
      proc.kill("SIGTERM");
      let grace: NodeJS.Timeout | undefined;
      const graceOver = new Promise<boolean>((resolve) => (grace = setTimeout(() => resolve(true), this.settings.stopGraceMs)));
      const timedOut = await Promise.race([proc.exited.then(() => false), graceOver]);
      clearTimeout(grace);
      if (timedOut) {
        this.log(r, "manager", `no exit ${this.settings.stopGraceMs} ms after SIGTERM; sending SIGKILL`);
        proc.kill("SIGKILL");
        await proc.exited;
      }
    }
    r.transport?.close();
    // Gone for good: its output is in its log now.
    r.tail?.remove();
    await r.file.close();
    this.all.delete(r.status.id);
    this.emit(r, true);
  }

  private setState(r: LocalReplica, state: ReplicaState, message: string): void {
    r.status.state = state;
    r.status.message = message;
    this.emit(r, false);
  }

  private log(r: LocalReplica, stream: LogStream, text: string): void {
    const line = r.logs.push(stream, text);
    r.file.write(formatLogLine(line));
  }

  private emit(r: LocalReplica, removed: boolean): void {
    for (const l of this.listeners) {
      try {
        l(clone(ReplicaSchema, r.status), removed);
      } catch (err) {
        this.options.logger.error({ err }, "replica listener failed");
      }
    }
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
