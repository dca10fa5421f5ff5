/**
 * Keeps the services `clipper up` started running, as Kubernetes keeps a
 * pod's containers: a service that exits is started again after a backoff
 * (0.5 s doubling to 30 s, from 0.5 s again after a run of a minute), alone,
 * so that the others keep what they hold (the container-manager its replicas,
 * the registry its data, the gateway its connections). services.json is the
 * record: each restart, its count, and the last exit land there for
 * `clipper status`. `restart` does the same at once, on request.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  connectHost,
  isRunning,
  killGroup,
  launchOf,
  launchService,
  pidExists,
  processStartTicks,
  type RecordedService,
  type ServicesFile,
  type SupervisorRecord,
  stopService,
  tryReadServicesFile,
  waitHealthy,
  writeServicesFile,
} from "./supervisor.js";

export interface RestartBackoff {
  initialMs: number;
  maxMs: number;
  /** A run this long resets the delay to initialMs. */
  stableAfterMs: number;
}

export const DEFAULT_RESTART_BACKOFF: RestartBackoff = { initialMs: 500, maxMs: 30_000, stableAfterMs: 60_000 };

export interface ServiceSupervisorOptions {
  restartBackoff?: RestartBackoff;
  /** How often each service is checked. */
  pollMs?: number;
  /** How long a started service has to become healthy. */
  healthTimeoutMs?: number;
  /** Between the stop signal and SIGKILL, for `restart`. */
  stopGraceMs?: number;
  /** One line per thing it does (its log). */
  log?: (line: string) => void;
}

/** initial, doubling up to max; reset to initial. (services/shared's Backoff, which the supervisor does not load: it stays small.) */
class RestartDelay {
  private attempt = 0;
  constructor(private readonly backoff: RestartBackoff) {}
  next(): number {
    return Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt++);
  }
  reset(): void {
    this.attempt = 0;
  }
}

interface Watch {
  readonly backoff: RestartDelay;
  /** The operation under way (recovering a crash, or a requested restart); the poll leaves the service alone meanwhile. */
  busy?: Promise<void> | undefined;
  /** Ends the current operation's waits (the backoff, the health wait): a requested restart or close() takes over. */
  cancel?: AbortController;
  /** Why the process we started last ended, when it was our child. */
  exitReason?: string;
  /** The pid exitReason is about. */
  exitPid?: number;
  /** Set when services.json does not say how to start it: it is no longer watched. */
  unmanaged?: boolean;
}

/** Restarts the services of one services.json when they exit, and on request. */
export class ServiceSupervisor {
  private readonly watches = new Map<string, Watch>();
  private readonly settings: Required<Omit<ServiceSupervisorOptions, "log">>;
  private readonly log: (line: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private record: SupervisorRecord | undefined;
  private readonly lost: Promise<string>;
  private markLost: (reason: string) => void = () => {};

  constructor(
    private file: ServicesFile,
    options: ServiceSupervisorOptions = {},
  ) {
    this.settings = {
      restartBackoff: options.restartBackoff ?? DEFAULT_RESTART_BACKOFF,
      pollMs: options.pollMs ?? 250,
      healthTimeoutMs: options.healthTimeoutMs ?? 60_000,
      stopGraceMs: options.stopGraceMs ?? 10_000,
    };
    this.log = options.log ?? (() => {});
    this.lost = new Promise((resolve) => (this.markLost = resolve));
  }

  /**
   * Records this process as the data directory's supervisor and starts
   * watching. `lost` resolves if services.json goes away or names another
   * supervisor (then this one should exit).
   */
  start(record: SupervisorRecord): { lost: Promise<string> } {
    this.record = record;
    this.file = { ...this.file, supervisor: record };
    this.save();
    this.timer = setInterval(() => this.poll(), this.settings.pollMs);
    return { lost: this.lost };
  }

  /**
   * Stops `name` (its restart signal, or SIGTERM; SIGKILL after the grace),
   * starts it again and waits until it is healthy. Resolves with its new
   * record; rejects when it did not become healthy (the supervisor, if
   * watching, then restarts it with backoff).
   */
  async restart(name: string, onProgress: (line: string) => void = () => {}): Promise<RecordedService> {
    const watch = this.watch(name);
    if (this.find(name) === undefined) throw new Error(`no service named ${name}`);
    // Take over from a crash recovery that waits out its backoff or its health check.
    watch.cancel?.abort();
    while (watch.busy !== undefined) await watch.busy;
    let failure: string | undefined;
    const cancel = new AbortController();
    watch.cancel = cancel;
    const op = (async () => {
      const service = this.find(name);
      if (service === undefined) return;
      await stopService(service, {
        graceMs: this.settings.stopGraceMs,
        onProgress,
        ...(service.restartSignal === undefined ? {} : { signal: service.restartSignal }),
      });
      watch.backoff.reset();
      this.update(name, { lastExit: "restarted on request", lastExitAtMs: Date.now() });
      this.log(`${name}: restarting on request`);
      onProgress(`starting ${name}`);
      failure = await this.launch(name, cancel.signal);
    })();
    watch.busy = op.finally(() => (watch.busy = undefined));
    await watch.busy;
    const restarted = this.find(name);
    if (failure !== undefined || restarted === undefined) throw new Error(`${name} did not become healthy: ${failure ?? "not recorded"}`);
    return restarted;
  }

  /** Stops watching (and any restart under way waits no longer); every service is left as it is. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const w of this.watches.values()) w.cancel?.abort();
    await Promise.all([...this.watches.values()].map((w) => w.busy));
  }

  private poll(): void {
    if (this.closed) return;
    const onDisk = tryReadServicesFile(this.file.dataDir);
    if (onDisk === undefined || (this.record !== undefined && onDisk.supervisor?.pid !== this.record.pid)) {
      this.markLost(onDisk === undefined ? "services.json is gone" : "services.json names another supervisor");
      return;
    }
    for (const service of this.file.services) {
      const watch = this.watch(service.name);
      if (watch.busy !== undefined || watch.unmanaged === true || isRunning(service)) continue;
      const cancel = new AbortController();
      watch.cancel = cancel;
      watch.busy = this.recover(service, watch, cancel.signal).finally(() => (watch.busy = undefined));
    }
  }

  /** A service exited: wait out its backoff, then start it again. */
  private async recover(service: RecordedService, watch: Watch, cancelled: AbortSignal): Promise<void> {
    const now = Date.now();
    const reason = watch.exitPid === service.pid && watch.exitReason !== undefined ? watch.exitReason : "exited";
    const ranMs = now - service.startedAtMs;
    if (ranMs >= this.settings.restartBackoff.stableAfterMs) watch.backoff.reset();
    const delayMs = watch.backoff.next();
    if (launchOf(service) === undefined) {
      this.log(`${service.name} (pid ${service.pid}) ${reason}; cannot restart it: services.json does not say how (written by an older clipper)`);
      watch.unmanaged = true;
      return;
    }
    this.update(service.name, { lastExit: reason, lastExitAtMs: now, nextStartAtMs: now + delayMs });
    this.log(`${service.name} (pid ${service.pid}) ${reason} after ${formatDuration(ranMs)}; restarting in ${formatDuration(delayMs)}`);
    // Whatever it started is still in its group: a gateway's workers, say, would keep its port.
    if (!pidExists(service.pid)) killGroup(service.pid);
    await sleep(delayMs, undefined, { signal: cancelled }).catch(() => undefined);
    if (cancelled.aborted || this.closed) return;
    const failure = await this.launch(service.name, cancelled);
    if (failure !== undefined && failure !== "aborted") this.log(`${service.name} did not become healthy: ${failure}`);
  }

  /** Starts a recorded service again and waits for its health; undefined once healthy, else why not. */
  private async launch(name: string, cancelled: AbortSignal): Promise<string | undefined> {
    const service = this.find(name);
    const launch = service === undefined ? undefined : launchOf(service);
    if (service === undefined || launch === undefined) return "services.json does not say how to start it";
    const watch = this.watch(name);
    const started = launchService(launch, service.log);
    if (started.pid === undefined) return await started.exited;
    const pid = started.pid;
    void started.exited.then((reason) => {
      watch.exitPid = pid;
      watch.exitReason = reason;
    });
    const updated = this.update(name, {
      pid,
      startTicks: processStartTicks(pid),
      startedAtMs: Date.now(),
      restarts: (service.restarts ?? 0) + 1,
      nextStartAtMs: undefined,
    });
    const failure = await waitHealthy(launch, connectHost(this.file.host), this.settings.healthTimeoutMs, started.exited, cancelled);
    if (failure === undefined) {
      this.log(`${name} is healthy again (pid ${pid}, restart ${updated?.restarts ?? "?"})`);
    } else if (failure !== "aborted" && isRunning({ pid, startTicks: updated?.startTicks ?? null })) {
      // Alive but not healthy in time: it goes, and the next poll restarts it with a longer delay.
      killGroup(pid);
      watch.exitPid = pid;
      watch.exitReason = `not healthy within ${Math.round(this.settings.healthTimeoutMs / 1000)} s (${failure})`;
    }
    return failure;
  }

  private watch(name: string): Watch {
    let w = this.watches.get(name);
    if (w === undefined) {
      w = { backoff: new RestartDelay(this.settings.restartBackoff) };
      this.watches.set(name, w);
    }
    return w;
  }

  private find(name: string): RecordedService | undefined {
    return this.file.services.find((s) => s.name === name);
  }

  /** Changes a service's record (an undefined field is removed) and saves the file. */
  private update(name: string, changes: { [K in keyof RecordedService]?: RecordedService[K] | undefined }): RecordedService | undefined {
    let updated: RecordedService | undefined;
    this.file = {
      ...this.file,
      services: this.file.services.map((s) => {
        if (s.name !== name) return s;
        const next: Record<string, unknown> = { ...s, ...changes };
        for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
        updated = next as unknown as RecordedService;
        return updated;
      }),
    };
    this.save();
    return updated;
  }

  private save(): void {
    // Once another process owns the record (a `clipper down` took over), it is not ours to write.
    if (this.closed && this.record !== undefined) return;
    writeServicesFile(this.file);
  }
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  return `${Math.round(ms / 60_000)} min`;
}
