import fs from "node:fs";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import type { ModelRuntime } from "../../gen/clipper/v1/resources_pb.js";
import type { ClientSecurity, ServerSecurity } from "../shared/index.js";
import { createGrpcTransport, type Logger, modelKey, type prom, type RunningGrpcServer, registration, startGrpcServer, watchConfig } from "../shared/index.js";
import { ArtifactStore } from "./artifact-store.js";
import { defaultJavaSdkJar, defaultRRunner, type LaunchPaths, runtimeUnavailable } from "./backends/launch.js";
import { LocalProcessBackend, type LocalProcessBackendOptions } from "./backends/local-process-backend.js";
import type { ReplicaBackend } from "./backends/replica-backend.js";
import { ContainerManagerMetrics } from "./container-manager-metrics.js";
import { PythonEnvironments, type PythonEnvironmentsOptions } from "./python-environments.js";
import { Reconciler } from "./reconciler.js";
import { ReplicaReporter } from "./replica-reporter.js";
import { createContainerManagerService } from "./service.js";

/** What the manager needs of a backend beyond ReplicaBackend: per-replica metrics, and a handover that leaves replicas running. */
export type ManagedBackend = ReplicaBackend & Pick<LocalProcessBackend, "metricsEndpoint" | "release">;

export interface ContainerManagerOptions<B extends ManagedBackend = LocalProcessBackend> {
  /** Another engine than local processes (the kubernetes backend), already started (and adopting) by its creator; `backend` is then unused. */
  replicaBackend?: B;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** host:port of the registry. */
  registry: string;
  dataDir: string;
  repoRoot: string;
  python: string;
  /** The java executable for java_class models (a path or a name on PATH); default "java". */
  java?: string;
  /** The Java SDK's runnable jar; default the checkout's sdk/java/target/clipper-model-sdk-VERSION-all.jar. */
  javaSdkJar?: string;
  /** The R SDK's container runner; default the checkout's sdk/r/clippermodel/inst/bin/clipper-r-model. */
  rRunner?: string;
  /** The R library holding clippermodel; default the checkout's .tools/r-library when it holds it (.ci/run installs it there), else R's own. */
  rLibrary?: string;
  logger: Logger;
  maxArtifactBytes: number;
  deployTimeoutMs: number;
  maxReplicas?: number;
  /**
   * The environments built for closures that record packages (local backend only): where they are
   * cached (default `<dataDir>/python-envs`), their bounds, the build timeout and the installer.
   */
  pythonEnvironments?: Partial<
    Pick<PythonEnvironmentsOptions, "directory" | "installer" | "maxEnvironments" | "maxBytes" | "buildTimeoutMs" | "progressIntervalMs">
  >;
  /** Backend tuning (health interval, restart policy, grace), mostly for tests. */
  backend?: Omit<LocalProcessBackendOptions, "paths" | "logger">;
  metrics?: prom.Registry;
  /** Upper bounds (seconds) of the latency histograms. */
  latencyBuckets?: readonly number[];
  /** TLS and the service token for calls to the registry. */
  registrySecurity?: ClientSecurity;
  /** mTLS credentials and the API token check of this server. */
  serverSecurity?: ServerSecurity;
}

export interface RunningContainerManager<B extends ManagedBackend = LocalProcessBackend> {
  readonly server: RunningGrpcServer;
  readonly backend: B;
  /** The per-model Python environments; undefined with a backend that launches from an image. */
  readonly pythonEnvironments: PythonEnvironments | undefined;
  /**
   * Stops serving, stops every replica (SIGTERM, then SIGKILL after the grace)
   * and reports them gone. With `handover`, stops serving but leaves every
   * replica running, recorded in the data directory's ledger, for the next
   * container-manager to adopt (a restart that costs no replica).
   */
  close(options?: { handover?: boolean }): Promise<void>;
}

const RESYNC_INTERVAL_MS = 5000;

/** Wires the container-manager: config watch → reconciler → backend → reports, and the gRPC service. */
export async function startContainerManager<B extends ManagedBackend = LocalProcessBackend>(
  options: ContainerManagerOptions<B>,
): Promise<RunningContainerManager<B>> {
  const { logger } = options;
  // Set once made below: the environments follow the registry's models and ask for a reconcile.
  let followed: { watcher: ReturnType<typeof watchConfig>; reconciler: Reconciler } | undefined;
  let closing = false;
  const pythonEnvironments =
    options.replicaBackend !== undefined
      ? undefined
      : new PythonEnvironments({
          directory: path.join(options.dataDir, "python-envs"),
          ...options.pythonEnvironments,
          sdkPyproject: path.join(options.repoRoot, "sdk", "python", "pyproject.toml"),
          defaultPython: options.python,
          logger,
          models: () => followed?.watcher.view().models.values() ?? [],
          // A background build finished: start the replicas that waited for it.
          onPrepared: () => {
            if (followed !== undefined && !closing) followed.reconciler.reconcile(followed.watcher.view().models.values());
          },
        });
  const localPaths: LaunchPaths = {
    repoRoot: options.repoRoot,
    dataDir: options.dataDir,
    python: options.python,
    node: process.execPath,
    java: options.java ?? "java",
    javaSdkJar: options.javaSdkJar ?? defaultJavaSdkJar(options.repoRoot),
    rRunner: options.rRunner ?? defaultRRunner(options.repoRoot),
    ...rLibraryOption(options),
    ...(pythonEnvironments !== undefined ? { pythonEnvironments } : {}),
  };
  const backend = (options.replicaBackend ?? new LocalProcessBackend({ ...options.backend, paths: localPaths, logger })) as B;
  // Replicas a previous manager left running (killed, crashed, or handed over): the healthy ones are ours now.
  if (backend instanceof LocalProcessBackend) await backend.adoptLeftoverReplicas();
  const registryTransport = createGrpcTransport({ address: options.registry, ...options.registrySecurity });
  const registry = createClient(ManagementService, registryTransport);
  const reporter = new ReplicaReporter({
    report: async (replicaSet) => {
      await registry.reportReplicas({ replicaSet }, { timeoutMs: 5000 });
    },
    replicas: () => backend.replicas(),
    logger,
  });
  backend.onChange((r) => reporter.markDirty(r.modelName, r.modelVersion));
  const reconciler = new Reconciler(
    backend,
    logger,
    // A closure whose Python environment is not ready yet starts once it is (prepareInBackground, then onPrepared).
    pythonEnvironments === undefined ? undefined : (spec) => spec.runtime.kind.case !== "pythonClosure" || pythonEnvironments.ready(spec.runtime.kind.value),
  );
  const watcher = watchConfig({ registry: options.registry, logger, ...(options.registrySecurity ? { security: options.registrySecurity } : {}) });
  followed = { watcher, reconciler };
  watcher.onChange((view, change) => {
    if (closing) return;
    pythonEnvironments?.prepareInBackground(view.models.values());
    reconciler.reconcile(view.models.values());
    if (change === undefined) {
      // A fresh snapshot (first connection or a reconnect): make the registry's replica sets match what runs here.
      const keys = new Map<string, [string, string]>();
      for (const r of backend.replicas()) keys.set(modelKey(r.modelName, r.modelVersion), [r.modelName, r.modelVersion]);
      for (const s of view.replicaSets.values()) keys.set(modelKey(s.modelName, s.modelVersion), [s.modelName, s.modelVersion]);
      for (const [name, version] of keys.values()) reporter.markDirty(name, version);
    }
  });
  // A safety net: converge again now and then, in case a start or stop was lost.
  const resync = setInterval(() => {
    if (closing || !watcher.connected()) return;
    pythonEnvironments?.prepareInBackground(watcher.view().models.values());
    reconciler.reconcile(watcher.view().models.values());
  }, RESYNC_INTERVAL_MS);
  resync.unref();

  const metrics =
    options.metrics === undefined
      ? undefined
      : new ContainerManagerMetrics(options.metrics, {
          backend,
          config: () => (watcher.connected() ? watcher.view() : undefined),
          dataDir: options.dataDir,
          logger,
          ...(options.latencyBuckets ? { latencyBuckets: options.latencyBuckets } : {}),
        });

  const service = createContainerManagerService({
    registry,
    registryAddress: options.registry,
    config: watcher,
    backend,
    reconciler,
    artifacts: new ArtifactStore(options.dataDir, options.maxArtifactBytes),
    logger,
    defaultTimeoutMs: options.deployTimeoutMs,
    maxReplicas: options.maxReplicas ?? 64,
    replicasReported: () => reporter.idle(),
    ...(pythonEnvironments !== undefined ? { pythonEnvironments } : {}),
    // Another backend launches replicas its own way (the kubernetes backend, from its image) and says what it cannot run when it starts one.
    ...(options.replicaBackend === undefined ? { runtimeUnavailable: (runtime: ModelRuntime | undefined) => runtimeUnavailable(runtime, localPaths) } : {}),
  });
  let server: RunningGrpcServer;
  try {
    server = await startGrpcServer({
      host: options.host,
      port: options.port,
      services: [registration(ContainerManagerService, service)],
      reflection: true,
      logger,
      ...options.serverSecurity,
      // Artifacts arrive in chunks; no single message needs to be large.
      maxReceiveMessageBytes: 16 * 1024 * 1024,
    });
  } catch (err) {
    watcher.close();
    registryTransport.close();
    throw err;
  }

  return {
    server,
    backend,
    pythonEnvironments,
    async close(closeOptions = {}) {
      closing = true;
      clearInterval(resync);
      watcher.close();
      await server.close(1000);
      if (closeOptions.handover === true) {
        await backend.release();
        metrics?.close();
        reporter.close();
        registryTransport.close();
        return;
      }
      await backend.close();
      metrics?.writeTargets();
      metrics?.close();
      // Give the registry a moment to hear that the replicas are gone.
      await Promise.race([reporter.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
      reporter.close();
      registryTransport.close();
    },
  };
}

function rLibraryOption(options: { rLibrary?: string; repoRoot: string }): { rLibrary?: string } {
  if (options.rLibrary !== undefined) return { rLibrary: options.rLibrary };
  const checkout = path.join(options.repoRoot, ".tools", "r-library");
  return fs.existsSync(path.join(checkout, "clippermodel", "DESCRIPTION")) ? { rLibrary: checkout } : {};
}
