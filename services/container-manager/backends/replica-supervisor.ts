import { randomBytes } from "node:crypto";
import { clone, create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { type Replica, ReplicaSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { ConnectError, createGrpcTransport, type Logger, replicaTransport, speaksConnect } from "../../shared/index.js";
import { LogBuffer } from "../log-buffer.js";
import { defaultRestartPolicy, RestartPolicy, type RestartPolicyOptions } from "../restart-policy.js";
import { formatLogLine, type LogLine, type LogStream, type ReplicaBackend, type ReplicaListener, type ReplicaSpec } from "./replica-backend.js";

/** How replicas are kept running, the same for every backend that runs them itself (processes, containers). */
export interface SupervisionOptions {
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
  /** Log lines quoted in a FAILED replica's message. */
  failureLogLines?: number;
}

/** Every default of SupervisionOptions, in one place. */
export const DEFAULT_SUPERVISION: Required<SupervisionOptions> = {
  restartPolicy: defaultRestartPolicy,
  healthIntervalMs: 500,
  healthTimeoutMs: 1000,
  unhealthyAfterChecks: 3,
  restartAfterChecks: 10,
  startTimeoutMs: 120_000,
  stopGraceMs: 5000,
  logBufferLines: 1000,
  failureLogLines: 20,
};

/** After SIGKILL, how long a run may take to be seen gone before the stop goes on without it (an engine that stopped answering). */
const KILL_WAIT_MS = 5000;

/** One replica as the supervisor keeps it; `own` is what its backend keeps beside (log file, resources). */
export interface SupervisedReplica<Run, Own> {
  readonly status: Replica;
  readonly spec: ReplicaSpec;
  readonly own: Own;
  readonly logs: LogBuffer;
  /** The current run (a process, a container) while it runs. */
  readonly run?: Run;
  /** host:port of the runtime's own /metrics (CLIPPER_METRICS_PORT). */
  readonly metricsEndpoint?: string;
  /** Why the supervisor killed the current run; its exit is reported with it. */
  readonly killReason?: string;
}

/** A run that has started; `exited` resolves once, when it has ended, with how (or undefined once it is no longer followed). */
export interface StartedRun<Run> {
  kind: "started";
  run: Run;
  /** Where its ModelService and grpc.health.v1 answer (host:port, or http://host:port for Connect). */
  endpoint: string;
  metricsEndpoint: string;
  exited: Promise<string | undefined>;
}

/**
 * What a launch came to: a run; `failed`, the replica cannot be launched at
 * all (FAILED at once); `exited`, a run that ended before it started (a failed
 * run, under the restart policy); `abandoned`, the launch was cancelled.
 */
export type LaunchOutcome<Run> = StartedRun<Run> | { kind: "failed"; reason: string } | { kind: "exited"; what: string } | { kind: "abandoned" };

/** The primitives a backend drives its replicas' runs with; the supervisor does the rest. */
export interface ReplicaRunner<Run, Own> {
  /** Starts a new run. `cancelled` aborts when the replica is stopped or released meanwhile: answer `abandoned`, leaving nothing behind. */
  launch(r: SupervisedReplica<Run, Own>, cancelled: AbortSignal): Promise<LaunchOutcome<Run>>;
  /** A run has started, its endpoint and start time in `r.status` (the local backend records it for a later manager). */
  started?(r: SupervisedReplica<Run, Own>, run: Run): void;
  /** Sends a signal to a run; one already gone is no error. */
  signal(r: SupervisedReplica<Run, Own>, run: Run, signal: "SIGTERM" | "SIGKILL"): void;
  /** Cleans up after a run that ended, whether it exited, was killed or was stopped. */
  ended(r: SupervisedReplica<Run, Own>, run: Run): void | Promise<void>;
  /** Before each health check: why the run must be killed now (over its memory limit), or undefined. */
  beforeHealthCheck?(r: SupervisedReplica<Run, Own>, run: Run): string | undefined;
  /** Stops following a replica and its run without touching the run (a handover). */
  release(r: SupervisedReplica<Run, Own>): void | Promise<void>;
  /** The replica has stopped for good; it is forgotten next. */
  removed?(r: SupervisedReplica<Run, Own>): void | Promise<void>;
}

/** Asks one replica's health: undefined when SERVING, else what is wrong. */
export interface HealthProbe {
  check(timeoutMs: number): Promise<string | undefined>;
  close(): void;
}

export interface ReplicaSupervisorOptions<Run, Own> extends SupervisionOptions {
  runner: ReplicaRunner<Run, Own>;
  logger: Logger;
  /** Where each line of a replica's log goes besides its buffer (the local backend's log file). */
  onLogLine?: (r: SupervisedReplica<Run, Own>, line: LogLine) => void;
  /** How a replica's health is asked; default grpc.health.v1 at its endpoint (tests give another). */
  healthProbe?: (endpoint: string) => HealthProbe;
}

/** What an adopting backend knows of a run a previous manager started. */
export interface AdoptedReplica<Own> {
  id: string;
  spec: ReplicaSpec;
  own: Own;
  endpoint: string;
  metricsEndpoint?: string;
  startedAtMs: number;
  restarts: number;
  /** The replica's message (what it was adopted from). */
  message: string;
  /** The log line that says so. */
  note: string;
  /** Its log as the previous manager left it, oldest first. */
  history?: readonly LogLine[];
}

interface Supervised<Run, Own> extends SupervisedReplica<Run, Own> {
  run?: Run;
  metricsEndpoint?: string;
  killReason?: string;
  readonly policy: RestartPolicy;
  /** Aborted when the replica is stopped or released: ends its launch and its health checks. */
  readonly cancel: AbortController;
  exited?: Promise<string | undefined>;
  health?: HealthProbe;
  launching?: Promise<void>;
  /** The current run's clean-up, once it has ended. */
  cleanup?: Promise<void>;
  launchedAtMs: number;
  readyThisRun: boolean;
  failedChecks: number;
  timer?: NodeJS.Timeout;
  /** Why the previous run ended, kept in the message once the replacement is READY. */
  lastExit?: string;
  stopping?: Promise<void>;
  /** Handed over: its run is the next manager's, nothing here touches it again. */
  released?: boolean;
}

/**
 * Keeps replicas running with a backend's primitives (launch, signal, wait
 * for exit, adopt): STARTING from a launch, health checks every interval
 * (READY, UNHEALTHY after failures in a row, killed when hung or not ready in
 * time), a restart under the restart policy after each exit (FAILED when it
 * keeps dying before it is ready), a stop with a grace (SIGTERM, SIGKILL after
 * it), a handover that lets go of every run, and a snapshot to each listener
 * at each change. Replicas are bounded by what the reconciler starts.
 */
export class ReplicaSupervisor<Run, Own> {
  private readonly all = new Map<string, Supervised<Run, Own>>();
  private readonly listeners = new Set<ReplicaListener>();
  private readonly settings: Required<SupervisionOptions>;
  private readonly runner: ReplicaRunner<Run, Own>;
  private readonly probe: (endpoint: string) => HealthProbe;

  constructor(private readonly options: ReplicaSupervisorOptions<Run, Own>) {
    this.settings = { ...DEFAULT_SUPERVISION, ...options };
    this.runner = options.runner;
    this.probe = options.healthProbe ?? grpcHealthProbe;
  }

  /** Starts a replica (`own`: the backend's state for it, given its new id); returns its first snapshot (STARTING) at once. */
  start(spec: ReplicaSpec, own: (id: string) => Own): Replica {
    const id = randomBytes(4).toString("hex");
    const now = Date.now();
    const r = this.record(
      create(ReplicaSchema, { id, modelName: spec.modelName, modelVersion: spec.modelVersion, state: ReplicaState.STARTING, startedAtMs: BigInt(now) }),
      spec,
      own(id),
      now,
      false,
    );
    this.all.set(id, r);
    this.emit(r, false);
    this.launch(r);
    return clone(ReplicaSchema, r.status);
  }

  /**
   * Takes over a run a previous manager started that still runs and answered
   * its health check: READY as it is (same id, endpoint and restarts), and
   * followed from now on as if started here. `follow` starts following its run.
   */
  adopt(a: AdoptedReplica<Own>, follow: (r: SupervisedReplica<Run, Own>) => { run: Run; exited: Promise<string | undefined> }): void {
    const status = create(ReplicaSchema, {
      id: a.id,
      modelName: a.spec.modelName,
      modelVersion: a.spec.modelVersion,
      state: ReplicaState.READY,
      endpoint: a.endpoint,
      startedAtMs: BigInt(a.startedAtMs),
      restarts: a.restarts,
      message: a.message,
    });
    const r = this.record(status, a.spec, a.own, a.startedAtMs, true);
    if (a.metricsEndpoint !== undefined) r.metricsEndpoint = a.metricsEndpoint;
    for (const line of a.history ?? []) r.logs.push(line.stream, line.text, line.timeMs);
    this.all.set(a.id, r);
    this.log(r, "manager", a.note);
    const { run, exited } = follow(r);
    this.follow(r, run, exited);
    r.health = this.probe(a.endpoint);
    this.emit(r, false);
    this.scheduleHealthCheck(r, run);
  }

  /** Stops a replica (STOPPING from now on: SIGTERM, SIGKILL after the grace) and forgets it. Unknown ids are ignored. */
  stop(id: string): Promise<void> {
    const r = this.all.get(id);
    if (r === undefined) return Promise.resolve();
    r.stopping ??= this.terminate(r);
    return r.stopping;
  }

  /** Stops every replica. */
  async close(): Promise<void> {
    await Promise.all([...this.all.keys()].map((id) => this.stop(id)));
  }

  /**
   * Lets go of every replica without stopping any (a handover): no health
   * check, restart or report follows; their runs go on for the next manager.
   */
  async release(): Promise<void> {
    const all = [...this.all.values()];
    this.all.clear();
    for (const r of all) {
      r.released = true;
      r.cancel.abort();
      clearTimeout(r.timer);
      await r.launching;
      r.health?.close();
      await this.runner.release(r);
    }
  }

  has(id: string): boolean {
    return this.all.has(id);
  }

  get(id: string): SupervisedReplica<Run, Own> | undefined {
    return this.all.get(id);
  }

  /** Snapshots of every replica, STOPPING ones included. */
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

  /** Adds a line to a replica's log. */
  log(r: SupervisedReplica<Run, Own>, stream: LogStream, text: string, timeMs?: number): void {
    const line = r.logs.push(stream, text, timeMs);
    this.options.onLogLine?.(r, line);
  }

  private record(status: Replica, spec: ReplicaSpec, own: Own, launchedAtMs: number, readyThisRun: boolean): Supervised<Run, Own> {
    return {
      status,
      spec,
      own,
      logs: new LogBuffer(this.settings.logBufferLines),
      policy: new RestartPolicy(this.settings.restartPolicy),
      cancel: new AbortController(),
      launchedAtMs,
      readyThisRun,
      failedChecks: 0,
    };
  }

  private launch(r: Supervised<Run, Own>): void {
    const launching = this.launchRun(r).finally(() => {
      if (r.launching === launching) delete r.launching;
    });
    r.launching = launching;
  }

  private async launchRun(r: Supervised<Run, Own>): Promise<void> {
    const cancelled = r.cancel.signal;
    if (cancelled.aborted) return;
    let outcome: LaunchOutcome<Run>;
    try {
      outcome = await this.runner.launch(r, cancelled);
    } catch (err) {
      outcome = { kind: "failed", reason: `cannot launch: ${String(err)}` };
    }
    if (outcome.kind === "abandoned") return;
    if (outcome.kind === "failed" || outcome.kind === "exited") {
      if (cancelled.aborted) return;
      if (outcome.kind === "failed") this.fail(r, outcome.reason);
      else this.afterExit(r, outcome.what);
      return;
    }
    const { run } = outcome;
    r.launchedAtMs = Date.now();
    r.readyThisRun = false;
    r.failedChecks = 0;
    delete r.killReason;
    r.metricsEndpoint = outcome.metricsEndpoint;
    r.status.endpoint = outcome.endpoint;
    r.status.startedAtMs = BigInt(r.launchedAtMs);
    this.runner.started?.(r, run);
    this.follow(r, run, outcome.exited);
    // A stop (or a handover) that came meanwhile takes the run from here.
    if (cancelled.aborted) return;
    this.setState(r, ReplicaState.STARTING, "");
    r.health = this.probe(outcome.endpoint);
    this.scheduleHealthCheck(r, run);
  }

  private follow(r: Supervised<Run, Own>, run: Run, exited: Promise<string | undefined>): void {
    r.run = run;
    r.exited = exited;
    delete r.cleanup;
    void exited.then((what) => this.onExit(r, run, what));
  }

  private scheduleHealthCheck(r: Supervised<Run, Own>, run: Run): void {
    r.timer = setTimeout(() => void this.checkHealth(r, run), this.settings.healthIntervalMs);
  }

  private current(r: Supervised<Run, Own>, run: Run): boolean {
    return r.run === run && !r.cancel.signal.aborted;
  }

  private async checkHealth(r: Supervised<Run, Own>, run: Run): Promise<void> {
    const health = r.health;
    if (!this.current(r, run) || health === undefined) return;
    const killFor = this.runner.beforeHealthCheck?.(r, run);
    if (killFor !== undefined) {
      this.kill(r, run, killFor);
      return;
    }
    const problem = await health.check(this.settings.healthTimeoutMs);
    // Stopped, released, or ended while the check was out: it is not this check's to act on.
    if (!this.current(r, run)) return;
    const s = this.settings;
    if (problem === undefined) {
      r.failedChecks = 0;
      r.readyThisRun = true;
      if (r.status.state !== ReplicaState.READY) this.setState(r, ReplicaState.READY, r.lastExit === undefined ? "" : `ready; restarted after: ${r.lastExit}`);
    } else {
      r.failedChecks++;
      if (r.status.state === ReplicaState.READY && r.failedChecks >= s.unhealthyAfterChecks) {
        this.setState(r, ReplicaState.UNHEALTHY, `health check failed ${r.failedChecks} times: ${problem}`);
      } else if (r.readyThisRun && s.restartAfterChecks > 0 && r.failedChecks >= s.restartAfterChecks) {
        // Alive but not answering: its exit restarts it under the restart policy, like any crash.
        this.kill(r, run, `killed after ${r.failedChecks} failed health checks in a row (last: ${problem})`);
        return;
      } else if (!r.readyThisRun && Date.now() - r.launchedAtMs > s.startTimeoutMs) {
        this.kill(r, run, `not ready within ${Math.round(s.startTimeoutMs / 1000)} s (last health check: ${problem})`);
        return;
      }
    }
    this.scheduleHealthCheck(r, run);
  }

  private kill(r: Supervised<Run, Own>, run: Run, reason: string): void {
    r.killReason = reason;
    this.runner.signal(r, run, "SIGKILL");
  }

  /** The run is over: stop checking it and clean up after it (once); resolves when that is done. */
  private endRun(r: Supervised<Run, Own>, run: Run): Promise<void> {
    if (r.run === run) {
      delete r.run;
      clearTimeout(r.timer);
      r.health?.close();
      delete r.health;
      r.cleanup = Promise.resolve()
        .then(() => this.runner.ended(r, run))
        .catch((err: unknown) => this.options.logger.error({ err, replica: r.status.id }, "cleaning up after a replica's run failed"));
    }
    return r.cleanup ?? Promise.resolve();
  }

  private onExit(r: Supervised<Run, Own>, run: Run, what: string | undefined): void {
    if (r.run !== run || r.released === true) return;
    void this.endRun(r, run);
    if (what === undefined || r.cancel.signal.aborted) return;
    this.afterExit(r, what);
  }

  /** A run ended: restart under the restart policy, or FAILED. */
  private afterExit(r: Supervised<Run, Own>, what: string): void {
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
      this.launch(r);
    }, decision.delayMs);
  }

  private fail(r: Supervised<Run, Own>, reason: string): void {
    this.log(r, "manager", `replica failed: ${reason}`);
    const lines = r.logs.tail(this.settings.failureLogLines).map(formatLogLine);
    this.setState(r, ReplicaState.FAILED, `${reason}; last log lines:\n${lines.join("\n")}`);
    this.options.logger.warn({ replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, reason }, "replica failed");
  }

  private async terminate(r: Supervised<Run, Own>): Promise<void> {
    r.cancel.abort();
    clearTimeout(r.timer);
    this.setState(r, ReplicaState.STOPPING, "stopping");
    await r.launching;
    const { run, exited } = r;
    if (run !== undefined && exited !== undefined) {
      await this.stopRun(r, run, exited);
      await this.endRun(r, run);
    }
    r.health?.close();
    await this.runner.removed?.(r);
    this.all.delete(r.status.id);
    this.emit(r, true);
  }

  /** SIGTERM, then SIGKILL if it has not exited after the grace. */
  private async stopRun(r: Supervised<Run, Own>, run: Run, exited: Promise<unknown>): Promise<void> {
    const grace = this.settings.stopGraceMs;
    this.runner.signal(r, run, "SIGTERM");
    if (await exitsWithin(exited, grace)) return;
    this.log(r, "manager", `no exit ${grace} ms after SIGTERM; sending SIGKILL`);
    this.runner.signal(r, run, "SIGKILL");
    if (!(await exitsWithin(exited, KILL_WAIT_MS))) this.log(r, "manager", `still not seen gone ${KILL_WAIT_MS} ms after SIGKILL; forgetting it`);
  }

  private setState(r: Supervised<Run, Own>, state: ReplicaState, message: string): void {
    r.status.state = state;
    r.status.message = message;
    this.emit(r, false);
  }

  private emit(r: Supervised<Run, Own>, removed: boolean): void {
    for (const l of this.listeners) {
      try {
        l(clone(ReplicaSchema, r.status), removed);
      } catch (err) {
        this.options.logger.error({ err }, "replica listener failed");
      }
    }
  }
}

/** A backend whose replicas a ReplicaSupervisor keeps: what callers ask of it is answered by the supervisor. */
export abstract class SupervisedBackend<Run, Own> implements ReplicaBackend {
  protected abstract readonly supervisor: ReplicaSupervisor<Run, Own>;

  abstract start(spec: ReplicaSpec): Replica;

  stop(id: string): Promise<void> {
    return this.supervisor.stop(id);
  }

  replicas(): Replica[] {
    return this.supervisor.replicas();
  }

  onChange(listener: ReplicaListener): () => void {
    return this.supervisor.onChange(listener);
  }

  logs(id: string, tail: number): LogLine[] | undefined {
    return this.supervisor.logs(id, tail);
  }

  /** host:port where a replica's runtime serves /metrics, once launched. */
  metricsEndpoint(id: string): string | undefined {
    return this.supervisor.get(id)?.metricsEndpoint;
  }

  close(): Promise<void> {
    return this.supervisor.close();
  }

  /**
   * Stops managing every replica without stopping any (a handover: the next
   * container-manager adopts them); nothing is reported removed.
   */
  release(): Promise<void> {
    return this.supervisor.release();
  }
}

/** Whether `exited` settles within `ms`. */
async function exitsWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const over = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([exited.then(() => true), over]);
  } finally {
    clearTimeout(timer);
  }
}

/** grpc.health.v1 (or its Connect form, for http:// endpoints) at a replica's endpoint. */
function grpcHealthProbe(endpoint: string): HealthProbe {
  const transport = replicaTransport(endpoint);
  const client = createClient(Health, transport);
  return {
    async check(timeoutMs) {
      try {
        const res = await client.check({ service: "" }, { timeoutMs });
        return res.status === HealthCheckResponse_ServingStatus.SERVING ? undefined : `health status ${HealthCheckResponse_ServingStatus[res.status]}`;
      } catch (err) {
        return err instanceof ConnectError ? err.rawMessage : String(err);
      }
    },
    close: () => transport.close(),
  };
}

/** Whether a grpc.health.v1 server answers SERVING at `endpoint` within three tries 250 ms apart (what an adopting manager asks). */
export async function answersHealth(endpoint: string | undefined, timeoutMs: number): Promise<boolean> {
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
        const res = await createClient(Health, transport).check({ service: "" }, { timeoutMs });
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
