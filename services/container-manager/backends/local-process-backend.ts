import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { clone, create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { type Replica, ReplicaSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { ConnectError, createGrpcTransport, type GrpcTransport, type Logger } from "../../shared/index.js";
import { LineSplitter, LogBuffer, RotatingLogFile } from "../log-buffer.js";
import { defaultRestartPolicy, RestartPolicy, type RestartPolicyOptions } from "../restart-policy.js";
import { type LaunchPaths, launchCommand } from "./launch.js";
import { ProcessLedger } from "./process-ledger.js";
import { formatMiB, residentBytes } from "./process-memory.js";
import { formatLogLine, type LogLine, type LogStream, type ReplicaBackend, type ReplicaListener, type ReplicaSpec } from "./replica-backend.js";

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
}

const MAX_LOG_LINE_CHARS = 4096;

interface LocalReplica {
  readonly status: Replica;
  readonly spec: ReplicaSpec;
  readonly policy: RestartPolicy;
  readonly logs: LogBuffer;
  readonly file: RotatingLogFile;
  child?: ChildProcess;
  /** Resolves when the current child has exited. */
  exited?: Promise<void>;
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

/**
 * Runs each replica as a child process (in its own process group) on a free
 * loopback port, health-checks it with grpc.health.v1, restarts it with
 * backoff when it exits, and captures its output.
 */
export class LocalProcessBackend implements ReplicaBackend {
  private readonly all = new Map<string, LocalReplica>();
  private readonly listeners = new Set<ReplicaListener>();
  private readonly logDir: string;
  private readonly ledger: ProcessLedger;
  private readonly settings: Required<Omit<LocalProcessBackendOptions, "paths" | "logger">>;

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
      parentEnv: options.parentEnv ?? process.env,
      memoryLimitBytes: options.memoryLimitBytes ?? 0,
    };
    this.logDir = path.join(options.paths.dataDir, "logs");
    fs.mkdirSync(this.logDir, { recursive: true });
    this.ledger = new ProcessLedger(path.join(options.paths.dataDir, "run", "replica-processes.json"));
  }

  /**
   * Stops the replicas that a previous container-manager with this data
   * directory left running when it was killed without stopping them (their
   * ports and memory would otherwise stay taken for good). Call before
   * starting any replica.
   */
  async stopLeftoverReplicas(): Promise<void> {
    const pids = await this.ledger.stopLeftovers(this.settings.stopGraceMs);
    if (pids.length > 0) this.options.logger.warn({ pids }, "stopped replicas left running by a previous container-manager");
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
    const replica: LocalReplica = {
      status,
      spec,
      policy: new RestartPolicy(this.settings.restartPolicy),
      logs: new LogBuffer(this.settings.logBufferLines),
      file: new RotatingLogFile(path.join(this.logDir, `${spec.modelName}-${spec.modelVersion}-${id}.log`), this.settings.logFileMaxBytes),
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
    return this.all.get(id)?.child?.pid;
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
    this.log(r, "manager", `starting ${[command.command, ...command.args].join(" ")} on port ${port}`);
    r.metricsEndpoint = `127.0.0.1:${metricsPort}`;
    // Operators find where to scrape a replica here (GetLogs), in clipper_replica_info and in run/replica-targets.json.
    this.log(r, "manager", `metrics endpoint http://${r.metricsEndpoint}/metrics (CLIPPER_METRICS_PORT=${metricsPort})`);
    const child = spawn(command.command, command.args, { env: command.env, cwd: command.cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
    r.child = child;
    if (child.pid !== undefined) this.ledger.record(r.status.id, child.pid);
    r.exited = new Promise((resolve) => {
      const onEnd = (code: number | null, signal: NodeJS.Signals | null, err?: Error) => {
        resolve();
        this.onExit(r, child, code, signal, err);
      };
      child.once("exit", (code, signal) => onEnd(code, signal));
      child.once("error", (err) => {
        // A spawn error (e.g. ENOENT) means no process and no "exit" event.
        if (child.pid === undefined) onEnd(null, null, err);
      });
    });
    r.launchedAtMs = Date.now();
    r.readyThisRun = false;
    r.failedChecks = 0;
    delete r.killReason;
    r.status.endpoint = `127.0.0.1:${port}`;
    r.status.startedAtMs = BigInt(r.launchedAtMs);
    this.setState(r, ReplicaState.STARTING, "");
    for (const [stream, source] of [
      ["stdout", child.stdout],
      ["stderr", child.stderr],
    ] as const) {
      const splitter = new LineSplitter(MAX_LOG_LINE_CHARS, (line) => this.log(r, stream, line));
      source.setEncoding("utf8");
      source.on("data", (chunk: string) => splitter.write(chunk));
      source.on("end", () => splitter.end());
    }
    r.transport = createGrpcTransport({ address: r.status.endpoint });
    this.scheduleHealthCheck(r, child);
  }

  private scheduleHealthCheck(r: LocalReplica, child: ChildProcess): void {
    r.timer = setTimeout(() => void this.checkHealth(r, child), this.settings.healthIntervalMs);
  }

  private async checkHealth(r: LocalReplica, child: ChildProcess): Promise<void> {
    if (r.child !== child || r.stopping || r.transport === undefined) return;
    if (this.overMemoryLimit(r, child)) return;
    let problem: string | undefined;
    try {
      const res = await createClient(Health, r.transport).check({ service: "" }, { timeoutMs: this.settings.healthTimeoutMs });
      if (res.status !== HealthCheckResponse_ServingStatus.SERVING) problem = `health status ${HealthCheckResponse_ServingStatus[res.status]}`;
    } catch (err) {
      problem = err instanceof ConnectError ? err.rawMessage : String(err);
    }
    if (r.child !== child || r.stopping) return;
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
        killGroup(child, "SIGKILL");
        return;
      } else if (!r.readyThisRun && Date.now() - r.launchedAtMs > this.settings.startTimeoutMs) {
        r.killReason = `not ready within ${Math.round(this.settings.startTimeoutMs / 1000)} s (last health check: ${problem})`;
        killGroup(child, "SIGKILL");
        return;
      }
    }
    this.scheduleHealthCheck(r, child);
  }

  /** Kills a replica above the memory limit (its exit then restarts it); true when it did. */
  private overMemoryLimit(r: LocalReplica, child: ChildProcess): boolean {
    const limit = this.settings.memoryLimitBytes;
    if (limit <= 0 || child.pid === undefined) return false;
    const rss = residentBytes(child.pid);
    if (rss === undefined || rss <= limit) return false;
    r.killReason = `killed for exceeding the memory limit: resident memory ${formatMiB(rss)} > limit ${formatMiB(limit)}`;
    this.options.logger.warn(
      { replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, rssBytes: rss, limitBytes: limit },
      "replica over its memory limit",
    );
    killGroup(child, "SIGKILL");
    return true;
  }

  private onExit(r: LocalReplica, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, err: Error | undefined): void {
    if (r.child !== child) return;
    delete r.child;
    this.ledger.forget(r.status.id);
    clearTimeout(r.timer);
    r.transport?.close();
    delete r.transport;
    // Take any processes the replica started down with it.
    killGroup(child, "SIGKILL");
    if (r.stopping) return;
    const what =
      err !== undefined ? `could not start: ${err.message}` : (r.killReason ?? (signal !== null ? `killed by signal ${signal}` : `exited with code ${code}`));
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
    const child = r.child;
    if (child !== undefined && r.exited !== undefined) {
      killGroup(child, "SIGTERM");
      let grace: NodeJS.Timeout | undefined;
      const graceOver = new Promise<boolean>((resolve) => (grace = setTimeout(() => resolve(true), this.settings.stopGraceMs)));
      const timedOut = await Promise.race([r.exited.then(() => false), graceOver]);
      clearTimeout(grace);
      if (timedOut) {
        this.log(r, "manager", `no exit ${this.settings.stopGraceMs} ms after SIGTERM; sending SIGKILL`);
        killGroup(child, "SIGKILL");
        await r.exited;
      }
    }
    r.transport?.close();
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

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
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
