import fs from "node:fs";
import path from "node:path";
import { clone, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema, type Replica } from "../../../gen/clipper/v1/resources_pb.js";
import { ConnectError, type Logger } from "../../shared/index.js";
import { type ContainerCreateBody, type ContainerSummary, DockerEngineClient, DockerEngineError } from "./docker-engine-client.js";
import { kernelRecordsOomKill } from "./kernel-oom-log.js";
import { type LaunchPaths, launchCommand } from "./launch.js";
import { freePort } from "./local-process-backend.js";
import { formatMiB } from "./process-memory.js";
import type { ReplicaSpec } from "./replica-backend.js";
import {
  answersHealth,
  DEFAULT_SUPERVISION,
  type LaunchOutcome,
  ReplicaSupervisor,
  SupervisedBackend,
  type SupervisedReplica,
  type SupervisionOptions,
} from "./replica-supervisor.js";

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

export interface ContainerEngineBackendOptions extends SupervisionOptions {
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
}

/** Every default in one place (those of supervision in replica-supervisor.ts). */
export const DEFAULT_CONTAINER_ENGINE_OPTIONS = {
  imagePaths: { repoRoot: "/opt/clipper", dataDir: "/var/lib/clipper", python: "python3", node: "node" } satisfies LaunchPaths,
  defaultResources: { memoryBytes: 0, nanoCpus: 0, pidsLimit: 1024 } satisfies ContainerResources,
  ulimit: 4096,
  extraReadOnlyMounts: [] as string[],
  ...DEFAULT_SUPERVISION,
};

const MAX_LOG_LINE_CHARS = 4096;

/** One run of a replica: its container, and what follows its output and waits for its exit. */
interface ContainerRun {
  readonly containerId: string;
  readonly watch: AbortController;
}

/** What this backend keeps of a replica beside what the supervisor keeps. */
interface ContainerReplicaLimits {
  readonly resources: ContainerResources;
}

type EngineReplica = SupervisedReplica<ContainerRun, ContainerReplicaLimits>;

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
 * container. Output comes from the engine's logs API. replica-supervisor.ts
 * keeps the replicas running; this backend launches, signals, follows and
 * removes their containers (a stop: SIGTERM, SIGKILL after the grace).
 */
export class ContainerEngineBackend extends SupervisedBackend<ContainerRun, ContainerReplicaLimits> {
  private readonly engine: DockerEngineClient;
  private readonly o: Required<Omit<ContainerEngineBackendOptions, "resources">> & Pick<ContainerEngineBackendOptions, "resources">;
  protected readonly supervisor: ReplicaSupervisor<ContainerRun, ContainerReplicaLimits>;

  constructor(options: ContainerEngineBackendOptions) {
    super();
    this.o = {
      ...DEFAULT_CONTAINER_ENGINE_OPTIONS,
      ...options,
      defaultResources: { ...DEFAULT_CONTAINER_ENGINE_OPTIONS.defaultResources, ...options.defaultResources },
      // Bind mounts need an absolute host path.
      dataDir: path.resolve(options.dataDir),
    };
    this.engine = new DockerEngineClient({ socketPath: options.socketPath });
    fs.mkdirSync(path.join(this.o.dataDir, "artifacts"), { recursive: true });
    this.supervisor = new ReplicaSupervisor({
      ...this.o,
      runner: {
        launch: (r, cancelled) => this.launch(r, cancelled),
        signal: (r, run, signal) => {
          this.engine.killContainer(run.containerId, signal).catch((err: unknown) => {
            // 404, 409: it is gone or has stopped running already.
            if (!(err instanceof DockerEngineError && (err.statusCode === 404 || err.statusCode === 409)))
              this.supervisor.log(r, "manager", `kill failed: ${String(err)}`);
          });
        },
        ended: async (r, run) => {
          run.watch.abort();
          // Its output is in the replica's log now; an exited container would only take space.
          await this.engine
            .removeContainer(run.containerId)
            .catch((err: unknown) => this.supervisor.log(r, "manager", `could not remove container ${run.containerId}: ${String(err)}`));
        },
        release: (r) => r.run?.watch.abort(),
      },
    });
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
      if (id === undefined || c.State !== "running" || this.supervisor.has(id)) {
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
      if (spec === undefined || !(await answersHealth(labels[CONTAINER_LABELS.endpoint], Math.min(this.o.healthTimeoutMs, 1000)))) {
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
    return this.supervisor.start(spec, () => ({ resources: this.resourcesFor(spec) }));
  }

  /** The engine's id of a replica's current container, for operators and tests. */
  containerId(id: string): string | undefined {
    return this.supervisor.get(id)?.run?.containerId;
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
    const res = r.own.resources;
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

  private async launch(r: EngineReplica, cancelled: AbortSignal): Promise<LaunchOutcome<ContainerRun>> {
    let port: number;
    let metricsPort: number;
    let body: ContainerCreateBody;
    try {
      port = await freePort();
      metricsPort = await freePort();
      body = this.containerBody(r, port, metricsPort);
    } catch (err) {
      return { kind: "failed", reason: `cannot launch: ${err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err)}` };
    }
    if (cancelled.aborted) return { kind: "abandoned" };
    const name = containerName(this.o.clusterName, r.spec, r.status.id, r.status.restarts);
    const res = r.own.resources;
    this.supervisor.log(r, "manager", `starting container ${name} from ${this.o.image}: ${[...body.Entrypoint, ...body.Cmd].join(" ")} on port ${port}`);
    this.supervisor.log(
      r,
      "manager",
      `limits: memory ${res.memoryBytes > 0 ? formatMiB(res.memoryBytes) : "none"}, cpus ${res.nanoCpus > 0 ? res.nanoCpus / 1e9 : "no limit"}, pids ${res.pidsLimit > 0 ? res.pidsLimit : "no limit"}, nofile/nproc ${this.o.ulimit}`,
    );
    let containerId: string | undefined;
    try {
      const created = await this.engine.createContainer(name, body);
      containerId = created.Id;
      for (const warning of created.Warnings ?? []) this.supervisor.log(r, "manager", `engine warning: ${warning}`);
      if (cancelled.aborted) {
        await this.engine.removeContainer(containerId);
        return { kind: "abandoned" };
      }
      await this.engine.startContainer(containerId);
    } catch (err) {
      // A start that fails (no such executable in the image, a bad mount) counts as a failed run of the replica.
      const reason = err instanceof DockerEngineError ? err.message : String(err);
      if (containerId !== undefined) await this.engine.removeContainer(containerId).catch(() => undefined);
      return cancelled.aborted ? { kind: "abandoned" } : { kind: "exited", what: `could not start its container: ${reason}` };
    }
    const run = { containerId, watch: new AbortController() };
    return {
      kind: "started",
      run,
      endpoint: `127.0.0.1:${port}`,
      metricsEndpoint: `127.0.0.1:${metricsPort}`,
      // All of it: what the container wrote before the follow connected (an early crash's error) is this run's too.
      exited: this.follow(r, run, "all"),
    };
  }

  /** A running container a previous manager created that answered its health check: managed from now on as if started here. */
  private adopt(id: string, containerId: string, spec: ReplicaSpec, labels: Record<string, string>): void {
    const endpoint = labels[CONTAINER_LABELS.endpoint] ?? "";
    const metricsEndpoint = labels[CONTAINER_LABELS.metricsEndpoint];
    this.supervisor.adopt(
      {
        id,
        spec,
        own: { resources: this.resourcesFor(spec) },
        endpoint,
        ...(metricsEndpoint === undefined ? {} : { metricsEndpoint }),
        startedAtMs: Number(labels[CONTAINER_LABELS.startedAtMs] ?? Date.now()),
        restarts: Number(labels[CONTAINER_LABELS.restarts] ?? 0),
        message: `adopted from a previous container-manager (container ${containerId.slice(0, 12)})`,
        note: `adopted by container-manager pid ${process.pid}: container ${containerId.slice(0, 12)} on ${endpoint} still runs and is healthy`,
      },
      (r) => {
        const run = { containerId, watch: new AbortController() };
        // Its earlier output, from the engine's log of the container, then what it writes from now on.
        return { run, exited: this.follow(r, run, this.o.logBufferLines) };
      },
    );
  }

  /** Follows a container's output into the replica's log; resolves with how it ended (undefined once no longer followed). */
  private follow(r: EngineReplica, run: ContainerRun, tail: number | "all"): Promise<string | undefined> {
    const { containerId, watch } = run;
    const output = this.engine
      .followLogs(containerId, {
        tail,
        maxLineChars: MAX_LOG_LINE_CHARS,
        signal: watch.signal,
        onLine: (stream, text, timeMs) => this.supervisor.log(r, stream, text, timeMs),
      })
      .catch((err: unknown) => {
        if (!watch.signal.aborted) this.supervisor.log(r, "manager", `lost the container's output: ${String(err)}`);
      });
    return this.waitForExit(r, containerId, watch.signal).then(async (exit) => {
      if (exit === undefined) return undefined;
      // Its last words are in the log before its exit is reported (the follow ends with the container).
      await Promise.race([output, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      return exit;
    });
  }

  /** Waits for the container to stop running; undefined when aborted (stopped or released). */
  private async waitForExit(r: EngineReplica, containerId: string, signal: AbortSignal): Promise<string | undefined> {
    for (;;) {
      try {
        await this.engine.waitContainer(containerId, signal);
        const state = (await this.engine.inspectContainer(containerId)).State;
        const memory = r.own.resources.memoryBytes;
        const limit = memory > 0 ? ` (memory limit ${formatMiB(memory)})` : "";
        if (state.OOMKilled) return this.outOfMemory(r, `killed by the kernel's OOM killer: out of memory${limit}; exit code ${state.ExitCode}`);
        if (r.killReason !== undefined) return r.killReason;
        // SIGKILL not sent from here: Podman on cgroups v1 does not record an OOM kill, the kernel's log does.
        if (state.ExitCode === 137 && kernelRecordsOomKill(containerId)) {
          return this.outOfMemory(
            r,
            `killed by the kernel's OOM killer: out of memory${limit}; exit code 137 (from the kernel's log: the engine did not record it)`,
          );
        }
        return state.ExitCode > 128 ? `killed by signal ${state.ExitCode - 128} (exit code ${state.ExitCode})` : `exited with code ${state.ExitCode}`;
      } catch (err) {
        if (signal.aborted) return undefined;
        if (err instanceof DockerEngineError && err.statusCode === 404) return r.killReason ?? "its container is gone (removed outside the container-manager)";
        // The engine restarted or the connection broke: ask again shortly.
        this.supervisor.log(r, "manager", `waiting for the container's exit failed (${String(err)}); retrying`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        if (signal.aborted) return undefined;
      }
    }
  }

  /** Says in the manager's log that a replica ran out of memory; returns `what`. */
  private outOfMemory(r: EngineReplica, what: string): string {
    this.o.logger.warn(
      { replica: r.status.id, model: r.spec.modelName, version: r.spec.modelVersion, limitBytes: r.own.resources.memoryBytes },
      "replica killed: out of memory",
    );
    return what;
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
