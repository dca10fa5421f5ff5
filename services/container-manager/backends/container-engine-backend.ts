import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { clone, create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema, type Replica, ReplicaSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { ConnectError, createGrpcTransport, type GrpcTransport, type Logger } from "../../shared/index.js";
import { LogBuffer } from "../log-buffer.js";
import { defaultRestartPolicy, RestartPolicy, type RestartPolicyOptions } from "../restart-policy.js";
import { type ContainerCreateBody, type ContainerSummary, DockerEngineClient, DockerEngineError } from "./docker-engine-client.js";
import { kernelRecordsOomKill } from "./kernel-oom-log.js";
import { type LaunchPaths, launchCommand } from "./launch.js";
import { freePort } from "./local-process-backend.js";
import { formatMiB } from "./process-memory.js";
import { formatLogLine, type LogLine, type LogStream, type ReplicaBackend, type ReplicaListener, type ReplicaSpec } from "./replica-backend.js";

/** Labels on every container the backend creates: a restarted container-manager adopts by them, and removes only what carries them. */
export const CONTAINER_LABELS = {
  managedBy: "app.kubernetes.io/managed-by",
  cluster: "clipper.ai/cluster",
  model: "clipper.ai/model",
  version: "clipper.ai/version",
  replica: "clipper.ai/replica",
  restarts: "clipper.ai/restarts",
  endpoint: "clipper.ai/endpoint",
  metricsEndpoint: "clipper.ai/metrics-endpoint",
  inputType: "clipper.ai/input-type",
  /** The model's runtime (ModelRuntime as JSON): what an adopting manager needs to restart the replica. */
  runtime: "clipper.ai/runtime",
  startedAtMs: "clipper.ai/started-at-ms",
} as const;
const MANAGED_BY = "clipper";

/** Limits of one replica's container. */
export interface ContainerResources {
  /** cgroup memory limit (swap included: the container cannot swap past it); 0: none. */
  memoryBytes: number;
  /** CPU quota in billionths of a CPU (1e9 = one core); 0: none. */
  nanoCpus: number;
  /** Most processes and threads; 0: none. */
  pidsLimit: number;
}

export interface ContainerEngineBackendOptions {
  /** The Docker Engine API's unix socket (Docker's /var/run/docker.sock, or `podman system service`'s). */
  socketPath: string;
  /** The runtime image every replica runs (scripts/podman/build-images.sh makes one). */
  image: string;
  /** Labels every container, so several systems share one engine. */
  clusterName: string;
  logger: Logger;
  /** The container-manager's data directory (its artifacts/ is mounted read-only into each container). */
  dataDir: string;
  /** Where the runtimes live inside the image (launch.ts builds the command and env from these). */
  imagePaths?: LaunchPaths;
  /** Limits for every replica; `resources` overrides them per model version. */
  defaultResources?: Partial<ContainerResources>;
  resources?: (spec: ReplicaSpec) => Partial<ContainerResources> | undefined;
  /** nofile and nproc, soft = hard (set explicitly: a rootful Podman without CAP_SYS_RESOURCE cannot raise its defaults). */
  ulimit?: number;
  /** Host paths mounted read-only at the same path in every container (`/host/path` or `/host/path:/container/path`). */
  extraReadOnlyMounts?: string[];
  restartPolicy?: RestartPolicyOptions;
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  /** Failed checks in a row after which a READY replica is UNHEALTHY. */
  unhealthyAfterChecks?: number;
  /** Failed checks in a row after which an UNHEALTHY replica is killed and restarted; 0: never. */
  restartAfterChecks?: number;
  /** A replica not ready this long after its start is killed (and counts as a failed start). */
  startTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping (rounded up to whole seconds, the engine's unit). */
  stopGraceMs?: number;
  logBufferLines?: number;
  /** Log lines quoted in a FAILED replica's message. */
  failureLogLines?: number;
}

/** Every default in one place. */
export const DEFAULT_CONTAINER_ENGINE_OPTIONS = {
  imagePaths: { repoRoot: "/opt/clipper", dataDir: "/var/lib/clipper", python: "python3", node: "node" } satisfies LaunchPaths,
  defaultResources: { memoryBytes: 0, nanoCpus: 0, pidsLimit: 1024 } satisfies ContainerResources,
  ulimit: 4096,
  extraReadOnlyMounts: [] as string[],
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

const MAX_LOG_LINE_CHARS = 4096;

interface EngineReplica {
  readonly status: Replica;
  readonly spec: ReplicaSpec;
  readonly policy: RestartPolicy;
  readonly logs: LogBuffer;
  /** The current container (one per run: a restart makes a new one). */
  containerId?: string;
  /** Ends the current container's log follow and wait. */
  watch?: AbortController;
  transport?: GrpcTransport;
  metricsEndpoint?: string;
  resources: ContainerResources;
  launchedAtMs: number;
  readyThisRun: boolean;
  failedChecks: number;
  timer?: NodeJS.Timeout;
  killReason?: string;
  lastExit?: string;
  stopping?: Promise<void>;
}

/** What adoptRunningContainers did. */
export interface ContainerAdoptionResult {
  /** Replica ids adopted: running, healthy containers a previous manager created. */
  adopted: string[];
  /** Container ids removed: this cluster's containers that had exited, did not answer their health check, or duplicated a replica. */
  removed: string[];
}

/**
 * Runs each replica as one container through the Docker Engine API (Docker,
 * or Podman's Docker-compatible service): created from the model's command
 * (launch.ts, with the image's paths), on the host's network (the runtime
 * binds 127.0.0.1 on a free port, as a local replica does), with memory,
 * CPU, pids and ulimit limits, the artifact store mounted read-only. Health
 * is the replica's grpc.health.v1, checked from here; an exit (the engine's
 * wait) is reported with its cause (the kernel's OOM killer from
 * State.OOMKilled) and restarted under the restart policy in a new
 * container. Output comes from the engine's logs API.
 */
export class ContainerEngineBackend implements ReplicaBackend {
  private readonly engine: DockerEngineClient;
  private readonly o: Required<Omit<ContainerEngineBackendOptions, "resources">> & Pick<ContainerEngineBackendOptions, "resources">;
  private readonly all = new Map<string, EngineReplica>();
  private readonly listeners = new Set<ReplicaListener>();

  constructor(options: ContainerEngineBackendOptions) {
    this.o = {
      ...DEFAULT_CONTAINER_ENGINE_OPTIONS,
      ...options,
      defaultResources: { ...DEFAULT_CONTAINER_ENGINE_OPTIONS.defaultResources, ...options.defaultResources },
      // Bind mounts need an absolute host path.
      dataDir: path.resolve(options.dataDir),
    };
    this.engine = new DockerEngineClient({ socketPath: options.socketPath });
    fs.mkdirSync(path.join(this.o.dataDir, "artifacts"), { recursive: true });
  }

  private get selector(): string[] {
    return [`${CONTAINER_LABELS.managedBy}=${MANAGED_BY}`, `${CONTAINER_LABELS.cluster}=${this.o.clusterName}`];
  }

  /**
   * Checks that the engine answers and has the image (nothing can be pulled
   * here, and a missing image would fail every start), naming what is wrong.
   * Returns the engine's description for the log.
   */
  async checkEngine(): Promise<string> {
    let version: Awaited<ReturnType<DockerEngineClient["version"]>>;
    try {
      version = await this.engine.version();
    } catch (err) {
      throw new Error(`no Docker Engine API at ${this.o.socketPath} (start dockerd, or podman system service): ${String(err)}`);
    }
    if (!(await this.engine.imageExists(this.o.image))) {
      throw new Error(
        `the engine at ${this.o.socketPath} has no image ${this.o.image} (build it: scripts/podman/build-images.sh, or docker build; docs/containers.md)`,
      );
    }
    const podman = version.Components?.find((c) => c.Name.toLowerCase().includes("podman"));
    return podman !== undefined ? `Podman ${podman.Version} (API ${version.ApiVersion})` : `Docker ${version.Version} (API ${version.ApiVersion})`;
  }

  /**
   * Takes over this cluster's containers a previous container-manager left
   * (killed, crashed, or handed over): one running container per replica that
   * answers its health check is adopted as it is (same id, endpoint and
   * restart count); every other container with this cluster's labels is
   * removed (exited ones, unhealthy ones, duplicates). Call before starting
   * any replica.
   */
  async adoptRunningContainers(): Promise<ContainerAdoptionResult> {
    const containers = await this.engine.listContainers(this.selector);
    const byReplica = new Map<string, ContainerSummary[]>();
    const removed: string[] = [];
    const remove = async (c: ContainerSummary) => {
      await this.engine.removeContainer(c.Id);
      removed.push(c.Id);
    };
    for (const c of containers) {
      const id = c.Labels?.[CONTAINER_LABELS.replica];
      if (id === undefined || c.State !== "running" || this.all.has(id)) {
        await remove(c);
        continue;
      }
      byReplica.set(id, [...(byReplica.get(id) ?? []), c]);
    }
    const adopted: string[] = [];
    for (const [id, candidates] of byReplica) {
      // The latest run of a replica is the one to keep (a manager killed mid-restart may leave two).
      candidates.sort((a, b) => Number(b.Labels?.[CONTAINER_LABELS.restarts] ?? 0) - Number(a.Labels?.[CONTAINER_LABELS.restarts] ?? 0));
      const [newest, ...older] = candidates;
      for (const c of older) await remove(c);
      if (newest === undefined) continue;
      const labels = newest.Labels ?? {};
      const spec = specFromLabels(labels);
      if (spec === undefined || !(await this.answersHealth(labels[CONTAINER_LABELS.endpoint]))) {
        await remove(newest);
        continue;
      }
      this.adopt(id, newest.Id, spec, labels);
      adopted.push(id);
    }
    if (adopted.length > 0) this.o.logger.info({ replicas: adopted }, "adopted running containers left by a previous container-manager");
    if (removed.length > 0) this.o.logger.warn({ containers: removed }, "removed containers a previous container-manager left that were not adoptable");
    return { adopted, removed };
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
    const r: EngineReplica = {
      status,
      spec,
      policy: new RestartPolicy(this.o.restartPolicy),
      logs: new LogBuffer(this.o.logBufferLines),
      resources: this.resourcesFor(spec),
      launchedAtMs: Date.now(),
      readyThisRun: false,
      failedChecks: 0,
    };
    this.all.set(id, r);
    this.emit(r, false);
    void this.launch(r);
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

  metricsEndpoint(id: string): string | undefined {
    return this.all.get(id)?.metricsEndpoint;
  }

  /** The engine's id of a replica's current container, for operators and tests. */
  containerId(id: string): string | undefined {
    return this.all.get(id)?.containerId;
  }

  async close(): Promise<void> {
    await Promise.all([...this.all.keys()].map((id) => this.stop(id)));
  }

  /** Stops managing every replica and leaves their containers running, for the next container-manager to adopt. */
  async release(): Promise<void> {
    const all = [...this.all.values()];
    this.all.clear();
    for (const r of all) {
      clearTimeout(r.timer);
      r.watch?.abort();
      r.transport?.close();
    }
  }

  private resourcesFor(spec: ReplicaSpec): ContainerResources {
    return { ...this.o.defaultResources, ...this.o.resources?.(spec) } as ContainerResources;
  }

  /** The container's body: the model's command as launch.ts builds it for the image's paths. */
  private containerBody(r: EngineReplica, port: number, metricsPort: number): ContainerCreateBody {
    const runtime = clone(ModelRuntimeSchema, r.spec.runtime);
    const kind = runtime.kind;
    if (kind.case === "nodeModule" || kind.case === "javaClass") {
      throw new Error(
        `${kind.case === "nodeModule" ? "node_module" : "java_class"} models do not run in the container backend's image ${this.o.image} (python_closure and command models do; docs/containers.md)`,
      );
    }
    // The interpreter recorded at deploy is a path on the deploying machine: in the container, the image's Python runs the closure.
    if (kind.case === "pythonClosure") kind.value.interpreter = "";
    const command = launchCommand({ ...r.spec, runtime }, port, this.o.imagePaths, {}, metricsPort);
    const res = r.resources;
    const mounts = [`${path.join(this.o.dataDir, "artifacts")}:${path.join(this.o.imagePaths.dataDir, "artifacts")}:ro`];
    for (const m of this.o.extraReadOnlyMounts) mounts.push(`${m.includes(":") ? m : `${m}:${m}`}:ro`);
    return {
      Image: this.o.image,
      Entrypoint: [command.command],
      Cmd: command.args,
      Env: Object.entries(command.env).map(([k, v]) => `${k}=${v}`),
      Labels: {
        [CONTAINER_LABELS.managedBy]: MANAGED_BY,
        [CONTAINER_LABELS.cluster]: this.o.clusterName,
        [CONTAINER_LABELS.model]: r.spec.modelName,
        [CONTAINER_LABELS.version]: r.spec.modelVersion,
        [CONTAINER_LABELS.replica]: r.status.id,
        [CONTAINER_LABELS.restarts]: String(r.status.restarts),
        [CONTAINER_LABELS.endpoint]: `127.0.0.1:${port}`,
        [CONTAINER_LABELS.metricsEndpoint]: `127.0.0.1:${metricsPort}`,
        [CONTAINER_LABELS.inputType]: String(r.spec.inputType),
        [CONTAINER_LABELS.runtime]: toJsonString(ModelRuntimeSchema, r.spec.runtime),
        [CONTAINER_LABELS.startedAtMs]: String(Date.now()),
      },
      WorkingDir: command.cwd,
      HostConfig: {
        // The runtime binds 127.0.0.1: the host's loopback, where the router dials it (a bridge would put it on a private range).
        NetworkMode: "host",
        ...(res.memoryBytes > 0 ? { Memory: res.memoryBytes, MemorySwap: res.memoryBytes } : {}),
        ...(res.nanoCpus > 0 ? { NanoCpus: res.nanoCpus } : {}),
        ...(res.pidsLimit > 0 ? { PidsLimit: res.pidsLimit } : {}),
        Ulimits: [
          { Name: "nofile", Soft: this.o.ulimit, Hard: this.o.ulimit },
          { Name: "nproc", Soft: this.o.ulimit, Hard: this.o.ulimit },
        ],
        Binds: mounts,
      },
    };
  }

  private async launch(r: EngineReplica): Promise<void> {
    if (r.stopping) return;
    let port: number;
    let metricsPort: number;
    let body: ContainerCreateBody;
    try {
      port = await freePort();
      metricsPort = await freePort();
      body = this.containerBody(r, port, metricsPort);
    } catch (err) {
      this.fail(r, `cannot launch: ${err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (r.stopping) return;
    const name = containerName(this.o.clusterName, r.spec, r.status.id, r.status.restarts);
    const res = r.resources;
    this.log(r, "manager", `starting container ${name} from ${this.o.image}: ${[...body.Entrypoint, ...body.Cmd].join(" ")} on port ${port}`);
    this.log(
      r,
      "manager",
      `limits: memory ${res.memoryBytes > 0 ? formatMiB(res.memoryBytes) : "none"}, cpus ${res.nanoCpus > 0 ? res.nanoCpus / 1e9 : "no limit"}, pids ${res.pidsLimit > 0 ? res.pidsLimit : "no limit"}, nofile/nproc ${this.o.ulimit}`,
    );
    let containerId: string;
    try {
      const created = await this.engine.createContainer(name, body);
      containerId = created.Id;
      for (const warning of created.Warnings ?? []) this.log(r, "manager", `engine warning: ${warning}`);
      if (r.stopping) {
        await this.engine.removeContainer(containerId);
        return;
      }
      r.containerId = containerId;
      await this.engine.startContainer(containerId);
    } catch (err) {
      // A start that fails (no such executable in the image, a bad mount) counts as a failed run of the replica.
      const reason = err instanceof DockerEngineError ? err.message : String(err);
      if (r.containerId !== undefined) await this.engine.removeContainer(r.containerId).catch(() => undefined);
      delete r.containerId;
      if (r.stopping) return;
      this.afterExit(r, `could not start its container: ${reason}`);
      return;
    }
    r.metricsEndpoint = `127.0.0.1:${metricsPort}`;
    r.launchedAtMs = Date.now();
    r.readyThisRun = false;
    r.failedChecks = 0;
    delete r.killReason;
    r.status.endpoint = `127.0.0.1:${port}`;
    r.status.startedAtMs = BigInt(r.launchedAtMs);
    this.setState(r, ReplicaState.STARTING, "");
    // All of it: what the container wrote before the follow connected (an early crash's error) is this run's too.
    this.follow(r, containerId, "all");
    r.transport = createGrpcTransport({ address: r.status.endpoint });
    this.scheduleHealthCheck(r, containerId);
  }

  /** A running container a previous manager created that answered its health check: managed from now on as if started here. */
  private adopt(id: string, containerId: string, spec: ReplicaSpec, labels: Record<string, string>): void {
    const endpoint = labels[CONTAINER_LABELS.endpoint] ?? "";
    const startedAtMs = Number(labels[CONTAINER_LABELS.startedAtMs] ?? Date.now());
    const status = create(ReplicaSchema, {
      id,
      modelName: spec.modelName,
      modelVersion: spec.modelVersion,
      state: ReplicaState.READY,
      endpoint,
      startedAtMs: BigInt(startedAtMs),
      restarts: Number(labels[CONTAINER_LABELS.restarts] ?? 0),
      message: `adopted from a previous container-manager (container ${containerId.slice(0, 12)})`,
    });
    const metricsEndpoint = labels[CONTAINER_LABELS.metricsEndpoint];
    const r: EngineReplica = {
      status,
      spec,
      policy: new RestartPolicy(this.o.restartPolicy),
      logs: new LogBuffer(this.o.logBufferLines),
      resources: this.resourcesFor(spec),
      containerId,
      launchedAtMs: startedAtMs,
      readyThisRun: true,
      failedChecks: 0,
      ...(metricsEndpoint === undefined ? {} : { metricsEndpoint }),
    };
    this.all.set(id, r);
    // Its earlier output, from the engine's log of the container, then what it writes from now on.
    this.follow(r, containerId, this.o.logBufferLines);
    this.log(r, "manager", `adopted by container-manager pid ${process.pid}: container ${containerId.slice(0, 12)} on ${endpoint} still runs and is healthy`);
    r.transport = createGrpcTransport({ address: endpoint });
    this.emit(r, false);
    this.scheduleHealthCheck(r, containerId);
  }

  /** Follows a container's output into the replica's log, and waits for its exit. */
  private follow(r: EngineReplica, containerId: string, tail: number | "all"): void {
    const watch = new AbortController();
    r.watch = watch;
    const output = this.engine
      .followLogs(containerId, {
        tail,
        maxLineChars: MAX_LOG_LINE_CHARS,
        signal: watch.signal,
        onLine: (stream, text, timeMs) => this.log(r, stream, text, timeMs),
      })
      .catch((err: unknown) => {
        if (!watch.signal.aborted) this.log(r, "manager", `lost the container's output: ${String(err)}`);
      });
    void this.waitForExit(r, containerId, watch.signal).then(async (exit) => {
      if (exit === undefined || r.containerId !== containerId) return;
      // Its last words are in the log before its exit is reported (the follow ends with the container).
      await Promise.race([output, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      this.onExit(r, containerId, exit);
    });
  }

  /** Waits for the container to stop running; undefined when aborted (stopped or released). */
  private async waitForExit(r: EngineReplica, containerId: string, signal: AbortSignal): Promise<string | undefined> {
    for (;;) {
      try {
        await this.engine.waitContainer(containerId, signal);
        const state = (await this.engine.inspectContainer(containerId)).State;
        const limit = r.resources.memoryBytes > 0 ? ` (memory limit ${formatMiB(r.resources.memoryBytes)})` : "";
        if (state.OOMKilled) return `killed by the kernel's OOM killer: out of memory${limit}; exit code ${state.ExitCode}`;
        if (r.killReason !== undefined) return r.killReason;
        // SIGKILL not sent from here: Podman on cgroups v1 does not record an OOM kill, the kernel's log does.
        if (state.ExitCode === 137 && kernelRecordsOomKill(containerId)) {
          return `killed by the kernel's OOM killer: out of memory${limit}; exit code 137 (from the kernel's log: the engine did not record it)`;
        }
        return state.ExitCode > 128 ? `killed by signal ${state.ExitCode - 128} (exit code ${state.ExitCode})` : `exited with code ${state.ExitCode}`;
      } catch (err) {
        if (signal.aborted) return undefined;
        if (err instanceof DockerEngineError && err.statusCode === 404) return r.killReason ?? "its container is gone (removed outside the container-manager)";
        // The engine restarted or the connection broke: ask again shortly.
        this.log(r, "manager", `waiting for the container's exit failed (${String(err)}); retrying`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        if (signal.aborted) return undefined;
      }
    }
  }

  /** Whether a grpc.health.v1 server answers SERVING at `endpoint`, within a few tries. */
  private async answersHealth(endpoint: string | undefined): Promise<boolean> {
    if (endpoint === undefined || endpoint === "") return false;
    const transport = createGrpcTransport({
      address: endpoint,
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 200, "grpc.use_local_subchannel_pool": 1 },
    });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 250));
        try {
          const res = await createClient(Health, transport).check({ service: "" }, { timeoutMs: Math.min(this.o.healthTimeoutMs, 1000) });
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

  private scheduleHealthCheck(r: EngineReplica, containerId: string): void {
    r.timer = setTimeout(() => void this.checkHealth(r, containerId), this.o.healthIntervalMs);
  }

  private async checkHealth(r: EngineReplica, containerId: string): Promise<void> {
    if (r.containerId !== containerId || r.stopping || r.transport === undefined) return;
    let problem: string | undefined;
    try {
      const res = await createClient(Health, r.transport).check({ service: "" }, { timeoutMs: this.o.healthTimeoutMs });
      if (res.status !== HealthCheckResponse_ServingStatus.SERVING) problem = `health status ${HealthCheckResponse_ServingStatus[res.status]}`;
    } catch (err) {
      problem = err instanceof ConnectError ? err.rawMessage : String(err);
    }
    if (r.containerId !== containerId || r.stopping) return;
    if (problem === undefined) {
      r.failedChecks = 0;
      r.readyThisRun = true;
      if (r.status.state !== ReplicaState.READY) this.setState(r, ReplicaState.READY, r.lastExit === undefined ? "" : `ready; restarted after: ${r.lastExit}`);
    } else {
      r.failedChecks++;
      if (r.status.state === ReplicaState.READY && r.failedChecks >= this.o.unhealthyAfterChecks) {
        this.setState(r, ReplicaState.UNHEALTHY, `health check failed ${r.failedChecks} times: ${problem}`);
      } else if (r.readyThisRun && this.o.restartAfterChecks > 0 && r.failedChecks >= this.o.restartAfterChecks) {
        // Alive but not answering: its exit restarts it under the restart policy, like any crash.
        this.kill(r, containerId, `killed after ${r.failedChecks} failed health checks in a row (last: ${problem})`);
        return;
      } else if (!r.readyThisRun && Date.now() - r.launchedAtMs > this.o.startTimeoutMs) {
        this.kill(r, containerId, `not ready within ${Math.round(this.o.startTimeoutMs / 1000)} s (last health check: ${problem})`);
        return;
      }
    }
    this.scheduleHealthCheck(r, containerId);
  }

  private kill(r: EngineReplica, containerId: string, reason: string): void {
    r.killReason = reason;
    this.engine.killContainer(containerId, "SIGKILL").catch((err: unknown) => this.log(r, "manager", `kill failed: ${String(err)}`));
  }

  private onExit(r: EngineReplica, containerId: string, what: string): void {
    if (r.containerId !== containerId || r.stopping) return;
    delete r.containerId;
    r.watch?.abort();
    clearTimeout(r.timer);
    r.transport?.close();
    delete r.transport;
    // Its output is in the replica's log now; an exited container would only take space.
    this.engine.removeContainer(containerId).catch((err: unknown) => this.log(r, "manager", `could not remove container ${containerId}: ${String(err)}`));
    this.afterExit(r, what);
  }

  /** A run ended: restart under the restart policy, or FAILED. */
  private afterExit(r: EngineReplica, what: string): void {
    this.log(r, "manager", what);
    r.lastExit = what;
    if (what.includes("OOM killer")) {
      this.o.logger.warn(
        { replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, limitBytes: r.resources.memoryBytes },
        "replica killed: out of memory",
      );
    }
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

  private fail(r: EngineReplica, reason: string): void {
    this.log(r, "manager", `replica failed: ${reason}`);
    const lines = r.logs.tail(this.o.failureLogLines).map(formatLogLine);
    this.setState(r, ReplicaState.FAILED, `${reason}; last log lines:\n${lines.join("\n")}`);
    this.o.logger.warn({ replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, reason }, "replica failed");
  }

  private async terminate(r: EngineReplica): Promise<void> {
    clearTimeout(r.timer);
    this.setState(r, ReplicaState.STOPPING, "stopping");
    const containerId = r.containerId;
    delete r.containerId;
    if (containerId !== undefined) {
      try {
        await this.engine.stopContainer(containerId, Math.ceil(this.o.stopGraceMs / 1000));
      } catch (err) {
        this.log(r, "manager", `stop failed (${String(err)}); removing it by force`);
      }
      try {
        await this.engine.removeContainer(containerId);
      } catch (err) {
        this.o.logger.error({ err, container: containerId, replica: r.status.id }, "could not remove a stopped replica's container");
      }
    }
    r.watch?.abort();
    r.transport?.close();
    this.all.delete(r.status.id);
    this.emit(r, true);
  }

  private setState(r: EngineReplica, state: ReplicaState, message: string): void {
    r.status.state = state;
    r.status.message = message;
    this.emit(r, false);
  }

  private log(r: EngineReplica, stream: LogStream, text: string, timeMs?: number): void {
    r.logs.push(stream, text, timeMs);
  }

  private emit(r: EngineReplica, removed: boolean): void {
    for (const l of this.listeners) {
      try {
        l(clone(ReplicaSchema, r.status), removed);
      } catch (err) {
        this.o.logger.error({ err }, "replica listener failed");
      }
    }
  }
}

/** A container name: `clipper-<cluster>-<model>-<version>-<replica>-<run>`, in the engine's [a-zA-Z0-9][a-zA-Z0-9_.-]* alphabet. */
export function containerName(clusterName: string, spec: Pick<ReplicaSpec, "modelName" | "modelVersion">, replicaId: string, run: number): string {
  const readable = `${clusterName}-${spec.modelName}-${spec.modelVersion}`.replace(/[^a-zA-Z0-9_.-]+/g, "-").slice(0, 100);
  return `clipper-${readable}-${replicaId}-${run}`;
}

/** The spec a container's labels record, if they parse. */
function specFromLabels(labels: Record<string, string>): ReplicaSpec | undefined {
  const modelName = labels[CONTAINER_LABELS.model];
  const modelVersion = labels[CONTAINER_LABELS.version];
  const runtime = labels[CONTAINER_LABELS.runtime];
  const inputType = Number(labels[CONTAINER_LABELS.inputType]);
  if (modelName === undefined || modelVersion === undefined || runtime === undefined || !(inputType in InputType)) return undefined;
  try {
    return { modelName, modelVersion, inputType, runtime: fromJsonString(ModelRuntimeSchema, runtime) };
  } catch {
    return undefined;
  }
}
