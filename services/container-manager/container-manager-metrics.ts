import fs from "node:fs";
import path from "node:path";
import { type Replica, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { type ConfigView, defaultLatencyBuckets, type Logger, prom } from "../shared/index.js";

/** What the metrics read; the backend's calls, so tests can give fakes. */
export interface ReplicaSource {
  replicas(): Replica[];
  onChange(listener: (replica: Replica, removed: boolean) => void): () => void;
  metricsEndpoint(id: string): string | undefined;
}

export interface ContainerManagerMetricsOptions {
  backend: ReplicaSource;
  /** The configuration (desired replicas); undefined until the first snapshot. */
  config: () => ConfigView | undefined;
  /** Where run/replica-targets.json (Prometheus file_sd) is written; none: not written. */
  dataDir?: string;
  latencyBuckets?: readonly number[];
  logger?: Logger;
}

/** One entry of a Prometheus file_sd file. */
export interface FileSdTarget {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * The container-manager's Prometheus series: replicas desired and by state per
 * model version, restarts, failed starts and start latency (from the
 * backend's state changes), and where each replica's own metrics are served
 * (clipper_replica_info and a file_sd file).
 */
export class ContainerManagerMetrics {
  private readonly restarts: prom.Counter<"model" | "version">;
  private readonly startFailures: prom.Counter<"model" | "version">;
  private readonly startDuration: prom.Histogram<"model" | "version">;
  private readonly seen = new Map<string, { state: ReplicaState; restarts: number }>();
  private readonly targetsFile: string | undefined;
  private writeScheduled = false;
  private readonly unsubscribe: () => void;

  constructor(
    registry: prom.Registry,
    private readonly options: ContainerManagerMetricsOptions,
  ) {
    const { backend, config } = options;
    this.targetsFile = options.dataDir === undefined ? undefined : path.join(options.dataDir, "run", "replica-targets.json");
    new prom.Gauge({
      name: "clipper_container_manager_replicas",
      help: "Replicas run by this container-manager, by model version and state (STARTING, READY, UNHEALTHY, FAILED, STOPPING).",
      labelNames: ["model", "version", "state"],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of backend.replicas()) this.inc({ model: r.modelName, version: r.modelVersion, state: ReplicaState[r.state] ?? "UNSPECIFIED" });
      },
    });
    new prom.Gauge({
      name: "clipper_container_manager_replicas_ready",
      help: "READY replicas per model version (0 for versions that want replicas and have none ready).",
      labelNames: ["model", "version"],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of config()?.models.values() ?? []) if (m.desiredReplicas > 0) this.set({ model: m.name, version: m.version }, 0);
        for (const r of backend.replicas()) if (r.state === ReplicaState.READY) this.inc({ model: r.modelName, version: r.modelVersion });
      },
    });
    new prom.Gauge({
      name: "clipper_container_manager_replicas_desired",
      help: "Replicas the registry asks for, per model version.",
      labelNames: ["model", "version"],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of config()?.models.values() ?? []) this.set({ model: m.name, version: m.version }, m.desiredReplicas);
      },
    });
    new prom.Gauge({
      name: "clipper_replica_info",
      help: "Always 1: where each replica's runtime serves its own Prometheus metrics (metrics_endpoint, host:port).",
      labelNames: ["model", "version", "replica", "metrics_endpoint"],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of backend.replicas()) {
          const endpoint = backend.metricsEndpoint(r.id);
          if (endpoint !== undefined) this.set({ model: r.modelName, version: r.modelVersion, replica: r.id, metrics_endpoint: endpoint }, 1);
        }
      },
    });
    this.restarts = new prom.Counter({
      name: "clipper_container_manager_replica_restarts_total",
      help: "Replica processes restarted after they exited, by model version.",
      labelNames: ["model", "version"],
      registers: [registry],
    });
    this.startFailures = new prom.Counter({
      name: "clipper_container_manager_replica_start_failures_total",
      help: "Replica processes that ended before they ever became ready (including those that made the replica FAILED), by model version.",
      labelNames: ["model", "version"],
      registers: [registry],
    });
    this.startDuration = new prom.Histogram({
      name: "clipper_container_manager_replica_start_duration_seconds",
      help: "Time from launching a replica process to its first successful health check, by model version.",
      labelNames: ["model", "version"],
      buckets: [...(options.latencyBuckets ?? defaultLatencyBuckets), 30, 60, 120],
      registers: [registry],
    });
    this.unsubscribe = backend.onChange((r, removed) => this.onChange(r, removed));
  }

  close(): void {
    this.unsubscribe();
  }

  /**
   * The file_sd entries: one per launched replica that is neither stopping nor FAILED. A FAILED replica has no
   * process to scrape (the container-manager gave up on it): ClipperReplicaFailed says so, and its target would
   * only add ClipperReplicaMetricsDown for the same replica.
   */
  targets(): FileSdTarget[] {
    const out: FileSdTarget[] = [];
    for (const r of this.options.backend.replicas()) {
      const endpoint = this.options.backend.metricsEndpoint(r.id);
      if (endpoint === undefined || r.state === ReplicaState.STOPPING || r.state === ReplicaState.FAILED) continue;
      out.push({ targets: [endpoint], labels: { job: "clipper-replica", model: r.modelName, version: r.modelVersion, replica: r.id } });
    }
    return out;
  }

  private onChange(r: Replica, removed: boolean): void {
    const labels = { model: r.modelName, version: r.modelVersion };
    const before = this.seen.get(r.id);
    if (removed) {
      this.seen.delete(r.id);
    } else {
      this.seen.set(r.id, { state: r.state, restarts: r.restarts });
      if (before !== undefined && r.restarts > before.restarts) this.restarts.inc(labels, r.restarts - before.restarts);
      if (before?.state === ReplicaState.STARTING && r.state !== before.state) {
        if (r.state === ReplicaState.READY) this.startDuration.observe(labels, Math.max(0, Date.now() - Number(r.startedAtMs)) / 1000);
        else if (r.state === ReplicaState.UNHEALTHY || r.state === ReplicaState.FAILED) this.startFailures.inc(labels);
      }
    }
    this.scheduleTargetsWrite();
  }

  /** Coalesces a burst of changes into one write. */
  private scheduleTargetsWrite(): void {
    if (this.targetsFile === undefined || this.writeScheduled) return;
    this.writeScheduled = true;
    setImmediate(() => {
      this.writeScheduled = false;
      this.writeTargets();
    });
  }

  /** Written to a temporary file and renamed, so Prometheus never reads half a file. */
  writeTargets(): void {
    const file = this.targetsFile;
    if (file === undefined) return;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, `${JSON.stringify(this.targets(), null, 2)}\n`);
      fs.renameSync(tmp, file);
    } catch (err) {
      this.options.logger?.warn({ err, file }, "cannot write the replica scrape targets");
    }
  }
}
