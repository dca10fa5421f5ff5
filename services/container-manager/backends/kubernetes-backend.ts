import { createHash } from "node:crypto";
import { posix } from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  AppsV1Api,
  CoreV1Api,
  type Informer,
  type KubeConfig,
  makeInformer,
  type ObjectCache,
  type V1Deployment,
  type V1EnvVar,
  type V1Pod,
  type V1ResourceRequirements,
  type V1Toleration,
} from "@kubernetes/client-node";
import { type Replica, ReplicaSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import type { Logger } from "../../shared/index.js";
import { artifactPath, type LaunchPaths, launchCommand } from "./launch.js";
import { type LogLine, type ReplicaBackend, type ReplicaListener, type ReplicaSpec, replicaKey } from "./replica-backend.js";

/** Labels and annotations on every object the backend makes (docs/kubernetes.md). */
export const LABELS = {
  name: "app.kubernetes.io/name",
  managedBy: "app.kubernetes.io/managed-by",
  cluster: "clipper.ai/cluster",
  model: "clipper.ai/model",
  version: "clipper.ai/version",
} as const;
/** Exact model name and version (label values are sanitized; these are not). */
const ANNOTATION_MODEL = "clipper.ai/model-name";
const ANNOTATION_VERSION = "clipper.ai/model-version";
const DELETION_COST = "controller.kubernetes.io/pod-deletion-cost";
const MANAGED_BY = "clipper";
const APP_NAME = "clipper-model";
const CONTAINER_NAME = "model";
const DATA_VOLUME = "data";

export interface KubernetesBackendOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Names every object (Deployment names, the clipper.ai/cluster label): several systems share a namespace. */
  clusterName: string;
  logger: Logger;
  /**
   * The container-manager's artifact server as the model pods reach it (e.g. http://clipper-container-manager:1342):
   * a pod fetches `<artifactsUrl>/artifacts/<sha256>` into its emptyDir and verifies it before the runtime starts.
   */
  artifactsUrl: string;
  /** Tokens on: the Secret key whose value the pods send as their bearer token to the artifact server (CLIPPER_ARTIFACT_TOKEN). */
  artifactsTokenSecret?: { name: string; key: string } | undefined;
  /** The runtime image (default DEFAULT_KUBERNETES_OPTIONS.image). */
  image?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** The port the runtime serves ModelService and grpc health on, inside the pod. */
  containerPort?: number;
  /** Where the runtimes live inside the image (launch.ts builds the command and env from these). */
  imagePaths?: LaunchPaths;
  /** The container's command, args, env and working directory; default: what the local launch runs (launch.ts) with imagePaths. */
  command?: (spec: ReplicaSpec, port: number) => PodCommand;
  /** Requests/limits of a model version that declares none in its spec (Model.resources); default: none. */
  resources?: (spec: ReplicaSpec) => V1ResourceRequirements | undefined;
  /** The model pods' nodeSelector: the nodes set aside for models (a pool with GPUs, say); default: none, any node. */
  nodeSelector?: Record<string, string>;
  /** The model pods' tolerations, for model nodes tainted so that nothing else lands there; default: none. */
  tolerations?: V1Toleration[];
  /** A pod not Ready this long after its creation is FAILED, with its reason and last events. */
  startTimeoutMs?: number;
  /** Backoff for restarting the pod informer after a watch error. */
  watchBackoffInitialMs?: number;
  watchBackoffMaxMs?: number;
}

/** Every default in one place. */
export const DEFAULT_KUBERNETES_OPTIONS = {
  image: "clipper/model-runtime:latest",
  imagePullPolicy: "IfNotPresent",
  containerPort: 7000,
  imagePaths: { repoRoot: "/opt/clipper", dataDir: "/var/lib/clipper", python: "python3", node: "node" } satisfies LaunchPaths,
  startTimeoutMs: 120_000,
  watchBackoffInitialMs: 200,
  watchBackoffMaxMs: 10_000,
  nodeSelector: {},
  tolerations: [],
} as const;

/** What the model container runs. */
export interface PodCommand {
  command: string[];
  args: string[];
  env: Record<string, string>;
  /** The container's working directory; undefined: the image's. */
  workingDir?: string;
}

/** Container waiting reasons that will not fix themselves. */
const FATAL_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

/** A container in CrashLoopBackOff with this many restarts is FAILED (fewer: restarting, as the local backend's restart policy's 3). */
export const CRASH_LOOP_FAILED_AFTER_RESTARTS = 3;

/** A label value: [A-Za-z0-9._-], at most 63, alphanumeric at both ends. */
export function labelValue(raw: string): string {
  const cleaned = raw
    .replace(/[^A-Za-z0-9._-]/g, "-")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  return cleaned;
}

/**
 * The Deployment of one model version: `clipper-<cluster>-<model>-<version>` made DNS-safe, with a
 * hash of the exact triple (so names that sanitize alike do not collide), short enough that its
 * pods' names (name-<hash10>-<5>) stay within 63 characters.
 */
export function deploymentName(clusterName: string, modelName: string, modelVersion: string): string {
  const hash = createHash("sha256").update(`${clusterName}\0${modelName}\0${modelVersion}`).digest("hex").slice(0, 8);
  const readable = `clipper-${clusterName}-${modelName}-${modelVersion}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .slice(0, 37)
    .replace(/-+$/, "");
  return `${readable}-${hash}`;
}

interface Version {
  spec: ReplicaSpec | undefined;
  name: string;
  modelName: string;
  modelVersion: string;
  /** What this backend wants spec.replicas to be. */
  desired: number;
  /** Ids of STARTING placeholders for replicas asked for whose pods are not seen yet. */
  placeholders: string[];
  /** The Deployment exists (created or adopted). */
  created: Promise<void> | undefined;
  /** Serializes writes to this Deployment. */
  chain: Promise<void>;
  /**
   * spec.replicas as this backend last created or patched it: a version's replicas start one by one, and the patches
   * queued behind the create would otherwise each write the same count again (one request per replica).
   */
  written: number | undefined;
}

/**
 * Replicas as pods: one Deployment per model version, `replicas` = how many were started and not
 * stopped. Observed state comes from an informer (list, then watch) on the pods carrying this
 * cluster's labels; a replica is a pod, its endpoint the pod's IP and container port.
 */
export class KubernetesBackend implements ReplicaBackend {
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly o: Required<Omit<KubernetesBackendOptions, "command" | "resources" | "artifactsTokenSecret">> &
    Pick<KubernetesBackendOptions, "command" | "resources" | "artifactsTokenSecret">;
  private readonly versions = new Map<string, Version>();
  private readonly listeners = new Set<ReplicaListener>();
  /** The last snapshot reported per replica id (pods and placeholders). */
  private readonly reported = new Map<string, Replica>();
  private readonly stopping = new Set<string>();
  /** Reasons found for pods past the start timeout (with their events), by pod name. */
  private readonly failures = new Map<string, string>();
  private readonly failureLookups = new Set<string>();
  /** A READY pod's replica by the informer's pod object (which an update replaces), so a refresh does not rebuild it. */
  private readonly readySnapshots = new WeakMap<V1Pod, Replica>();
  /** A refresh asked for by informer events and not run yet: a burst of events costs one pass over the pods, not one each. */
  private refreshPending: NodeJS.Immediate | undefined;
  private informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  private deploymentInformer: (Informer<V1Deployment> & ObjectCache<V1Deployment>) | undefined;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private timeoutTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private placeholderSeq = 0;
  /** Watch errors seen (each one restarts the informer after a backoff). */
  watchErrors = 0;

  constructor(options: KubernetesBackendOptions) {
    this.o = { ...DEFAULT_KUBERNETES_OPTIONS, ...options } as typeof this.o;
    this.apps = options.kubeConfig.makeApiClient(AppsV1Api);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  private get selector(): string {
    return `${LABELS.managedBy}=${MANAGED_BY},${LABELS.cluster}=${labelValue(this.o.clusterName)}`;
  }

  /**
   * Adopts the Deployments carrying this cluster's labels (their replicas count as started) and
   * starts watching their pods. Resolves once the first list is in.
   */
  async startWatching(): Promise<void> {
    const list = await this.apps.listNamespacedDeployment({ namespace: this.o.namespace, labelSelector: this.selector });
    for (const d of list.items) {
      const modelName = d.metadata?.annotations?.[ANNOTATION_MODEL];
      const modelVersion = d.metadata?.annotations?.[ANNOTATION_VERSION];
      const name = d.metadata?.name;
      if (modelName === undefined || modelVersion === undefined || name === undefined) continue;
      const key = replicaKey(modelName, modelVersion);
      if (this.versions.has(key)) continue;
      this.versions.set(key, {
        spec: undefined,
        name,
        modelName,
        modelVersion,
        desired: d.spec?.replicas ?? 0,
        placeholders: [],
        created: Promise.resolve(),
        chain: Promise.resolve(),
        written: d.spec?.replicas,
      });
      this.o.logger.info({ deployment: name, model: modelName, version: modelVersion, replicas: d.spec?.replicas ?? 0 }, "adopted deployment");
    }
    const ns = this.o.namespace;
    this.informer = this.watch<V1Pod>("pod", `/api/v1/namespaces/${ns}/pods`, () =>
      this.core.listNamespacedPod({ namespace: ns, labelSelector: this.selector }),
    );
    this.deploymentInformer = this.watch<V1Deployment>("deployment", `/apis/apps/v1/namespaces/${ns}/deployments`, () =>
      this.apps.listNamespacedDeployment({ namespace: ns, labelSelector: this.selector }),
    );
    this.deploymentInformer.on("delete", (d) => this.deploymentGone(d));
    await Promise.all([this.informer.start(), this.deploymentInformer.start()]);
    this.refresh();
    this.timeoutTimer = setInterval(() => this.refresh(), 1000);
    this.timeoutTimer.unref();
  }

  /**
   * An informer on this cluster's objects at `path`. client-node's informer stops on an error (the apiserver gone, a
   * broken connection, a 403 while a restarted apiserver's RBAC cache fills): it is started again after a backoff. It
   * resumes from its last resourceVersion, and lists again when the apiserver answers 410 Gone.
   */
  private watch<T extends V1Pod | V1Deployment>(
    what: string,
    path: string,
    list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
  ): Informer<T> & ObjectCache<T> {
    const informer = makeInformer<T>(this.o.kubeConfig, path, list as never, this.selector);
    const changed = () => this.scheduleRefresh();
    informer.on("add", changed);
    informer.on("update", changed);
    informer.on("delete", changed);
    let backoffMs = this.o.watchBackoffInitialMs;
    let lastErrorAt = 0;
    let timer: NodeJS.Timeout | undefined;
    informer.on("error", (err: unknown) => {
      this.watchErrors++;
      if (this.closed) return;
      // "connect" fires before the list and watch are tried, so it says nothing about health: the backoff starts again
      // once a watch has held for a while without an error.
      const now = Date.now();
      if (now - lastErrorAt > 30_000) backoffMs = this.o.watchBackoffInitialMs;
      lastErrorAt = now;
      const delay = backoffMs;
      backoffMs = Math.min(this.o.watchBackoffMaxMs, backoffMs * 2);
      this.o.logger.warn({ err: String(err), retryInMs: delay }, `${what} watch failed; restarting it`);
      clearTimeout(timer);
      const t = setTimeout(() => {
        this.restartTimers.delete(t);
        if (!this.closed) informer.start().catch(() => {});
      }, delay);
      t.unref();
      timer = t;
      this.restartTimers.add(t);
    });
    return informer;
  }

  /**
   * A Deployment deleted by someone else while replicas were wanted: its replicas are gone (reported removed), so the
   * reconciler starts them again, which creates it anew (as the local backend restarts a crashed process).
   */
  private deploymentGone(d: V1Deployment): void {
    const v = [...this.versions.values()].find((x) => x.name === d.metadata?.name);
    if (v === undefined || v.desired === 0 || this.closed) return;
    this.o.logger.warn(
      { deployment: v.name, replicas: v.desired },
      "deployment deleted behind the container-manager's back; its replicas will be started again",
    );
    v.desired = 0;
    v.placeholders = [];
    v.created = undefined;
    v.written = undefined;
    this.refresh();
  }

  start(spec: ReplicaSpec): Replica {
    const key = replicaKey(spec.modelName, spec.modelVersion);
    let v = this.versions.get(key);
    if (v === undefined) {
      v = {
        spec,
        name: deploymentName(this.o.clusterName, spec.modelName, spec.modelVersion),
        modelName: spec.modelName,
        modelVersion: spec.modelVersion,
        desired: 0,
        placeholders: [],
        created: undefined,
        chain: Promise.resolve(),
        written: undefined,
      };
      this.versions.set(key, v);
    }
    v.spec ??= spec;
    v.desired++;
    const id = `${v.name}-pending-${++this.placeholderSeq}`;
    v.placeholders.push(id);
    const version = v;
    this.write(version, async () => {
      if (version.created === undefined) {
        version.created = this.ensureDeployment(version, spec);
        await version.created;
      } else {
        await this.scale(version);
      }
    });
    this.refresh();
    return copyReplica(this.reported.get(id) ?? this.placeholder(version, id));
  }

  async stop(id: string): Promise<void> {
    for (const v of this.versions.values()) {
      const i = v.placeholders.indexOf(id);
      if (i >= 0) {
        v.placeholders.splice(i, 1);
        v.desired = Math.max(0, v.desired - 1);
        this.refresh();
        await this.write(v, () => this.scaleOrDelete(v));
        return;
      }
    }
    const pod = this.informer?.list(this.o.namespace).find((p) => p.metadata?.name === id);
    if (pod === undefined) return;
    const v = this.versionOf(pod);
    if (v === undefined || this.stopping.has(id)) return;
    this.stopping.add(id);
    v.desired = Math.max(0, v.desired - 1);
    this.refresh();
    await this.write(v, async () => {
      // The ReplicaSet controller removes the pod with the lowest deletion cost first: this one.
      await this.core
        .patchNamespacedPod({
          name: id,
          namespace: this.o.namespace,
          body: [{ op: "add", path: `/metadata/annotations/${DELETION_COST.replace("/", "~1")}`, value: "-1000" }],
        })
        .catch(ignoreNotFound);
      await this.scaleOrDelete(v);
      await this.core.deleteNamespacedPod({ name: id, namespace: this.o.namespace }).catch(ignoreNotFound);
    });
  }

  replicas(): Replica[] {
    return [...this.reported.values()].map(copyReplica);
  }

  onChange(listener: ReplicaListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  logs(id: string, _tail: number): LogLine[] | undefined {
    // Pod logs come from the kubelet (kubectl logs); the backend keeps none.
    return this.reported.has(id) ? [] : undefined;
  }

  /** Runtimes' own /metrics are not scraped through the backend on Kubernetes (pod IPs are the cluster's; a PodMonitor's job). */
  metricsEndpoint(_id: string): string | undefined {
    return undefined;
  }

  /** Deletes every Deployment this backend owns (its cluster's labels) and nothing else, then stops watching. */
  async close(): Promise<void> {
    const list = await this.apps.listNamespacedDeployment({ namespace: this.o.namespace, labelSelector: this.selector });
    await Promise.all(
      list.items.map((d) =>
        this.apps
          .deleteNamespacedDeployment({ name: d.metadata?.name ?? "", namespace: this.o.namespace, propagationPolicy: "Background" })
          .catch(ignoreNotFound),
      ),
    );
    for (const v of this.versions.values()) {
      v.desired = 0;
      v.placeholders = [];
    }
    await this.release();
    for (const [id, r] of this.reported) {
      this.reported.delete(id);
      this.emit(r, true);
    }
  }

  /** Stops watching and leaves every Deployment as it is, for the next container-manager to adopt. */
  async release(): Promise<void> {
    this.closed = true;
    for (const t of this.restartTimers) clearTimeout(t);
    clearInterval(this.timeoutTimer);
    clearImmediate(this.refreshPending);
    await Promise.allSettled([...this.versions.values()].map((v) => v.chain));
    await this.informer?.stop();
    await this.deploymentInformer?.stop();
  }

  // -------------------------------------------------------------------------------------------

  private write(v: Version, step: () => Promise<void>): Promise<void> {
    const next = v.chain.then(step).catch((err: unknown) => {
      this.o.logger.error({ err: describeError(err), deployment: v.name }, "kubernetes request failed");
      throw err;
    });
    v.chain = next.catch(() => {});
    return next;
  }

  private async ensureDeployment(v: Version, spec: ReplicaSpec): Promise<void> {
    try {
      const body = this.deploymentFor(v, spec);
      await this.apps.createNamespacedDeployment({ namespace: this.o.namespace, body });
      v.written = body.spec?.replicas;
      this.o.logger.info({ deployment: v.name, replicas: v.written }, "created deployment");
    } catch (err) {
      if (statusOf(err) !== 409) {
        v.created = undefined;
        throw err;
      }
      await this.scale(v);
    }
  }

  private async scale(v: Version): Promise<void> {
    const replicas = v.desired;
    if (v.written === replicas) return;
    await this.apps.patchNamespacedDeployment({
      name: v.name,
      namespace: this.o.namespace,
      body: [{ op: "replace", path: "/spec/replicas", value: replicas }],
    });
    v.written = replicas;
  }

  private async scaleOrDelete(v: Version): Promise<void> {
    if (v.desired > 0 || v.created === undefined) {
      if (v.created !== undefined) await this.scale(v);
      return;
    }
    await this.apps.deleteNamespacedDeployment({ name: v.name, namespace: this.o.namespace, propagationPolicy: "Background" }).catch(ignoreNotFound);
    v.created = undefined;
    v.written = undefined;
    this.o.logger.info({ deployment: v.name }, "deleted deployment");
  }

  private deploymentFor(v: Version, spec: ReplicaSpec): V1Deployment {
    const port = this.o.containerPort;
    const run = withArtifactFetch(spec, this.o.command?.(spec, port) ?? defaultCommand(spec, port, this.o.imagePaths), this.o);
    const labels = {
      [LABELS.name]: APP_NAME,
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.cluster]: labelValue(this.o.clusterName),
      [LABELS.model]: labelValue(spec.modelName),
      [LABELS.version]: labelValue(spec.modelVersion),
    };
    const annotations = { [ANNOTATION_MODEL]: spec.modelName, [ANNOTATION_VERSION]: spec.modelVersion };
    // The runtimes bind 127.0.0.1 by default: in a pod the kubelet's probe and the router come from outside it.
    const env: V1EnvVar[] = Object.entries({ CLIPPER_MODEL_HOST: "0.0.0.0", ...run.env }).map(([name, value]) => ({ name, value }));
    const tokenSecret = this.o.artifactsTokenSecret;
    if (run.env.CLIPPER_ARTIFACT_URL !== undefined && tokenSecret !== undefined) {
      env.push({ name: "CLIPPER_ARTIFACT_TOKEN", valueFrom: { secretKeyRef: { name: tokenSecret.name, key: tokenSecret.key } } });
    }
    const resources = declaredResources(spec) ?? this.o.resources?.(spec);
    return {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: v.name, labels, annotations },
      spec: {
        replicas: v.desired,
        selector: { matchLabels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.cluster]: labels[LABELS.cluster], "clipper.ai/deployment": v.name } },
        template: {
          metadata: { labels: { ...labels, "clipper.ai/deployment": v.name }, annotations },
          spec: {
            containers: [
              {
                name: CONTAINER_NAME,
                image: this.o.image,
                imagePullPolicy: this.o.imagePullPolicy,
                command: run.command,
                args: run.args,
                env,
                ...(run.workingDir !== undefined ? { workingDir: run.workingDir } : {}),
                ports: [{ name: "grpc", containerPort: port, protocol: "TCP" }],
                readinessProbe: { grpc: { port }, periodSeconds: 2, failureThreshold: 3 },
                // A failed artifact fetch (or a runtime that dies at start) says why in the pod's status, and so in the deploy's error.
                terminationMessagePolicy: "FallbackToLogsOnError",
                // The pod's own data dir: the fetched artifact, the model's working directory; nothing shared with the container-manager.
                volumeMounts: [{ name: DATA_VOLUME, mountPath: this.o.imagePaths.dataDir }],
                ...(resources !== undefined ? { resources } : {}),
              },
            ],
            volumes: [{ name: DATA_VOLUME, emptyDir: {} }],
            ...(Object.keys(this.o.nodeSelector).length > 0 ? { nodeSelector: { ...this.o.nodeSelector } } : {}),
            ...(this.o.tolerations.length > 0 ? { tolerations: this.o.tolerations.map((t) => ({ ...t })) } : {}),
          },
        },
      },
    };
  }

  private versionOf(pod: V1Pod): Version | undefined {
    const a = pod.metadata?.annotations ?? {};
    const modelName = a[ANNOTATION_MODEL];
    const modelVersion = a[ANNOTATION_VERSION];
    if (modelName === undefined || modelVersion === undefined) return undefined;
    return this.versions.get(replicaKey(modelName, modelVersion));
  }

  private placeholder(v: Version, id: string): Replica {
    return create(ReplicaSchema, { id, modelName: v.modelName, modelVersion: v.modelVersion, state: ReplicaState.STARTING, message: "pod not created yet" });
  }

  /** One refresh after the informer events of this turn of the event loop (a refresh walks every pod). */
  private scheduleRefresh(): void {
    if (this.refreshPending !== undefined || this.closed) return;
    this.refreshPending = setImmediate(() => {
      this.refreshPending = undefined;
      this.refresh();
    });
  }

  /** Recomputes every replica from the informer's pods and the placeholders; reports what changed. */
  private refresh(): void {
    if (this.closed) return;
    const next = new Map<string, Replica>();
    const podsPerVersion = new Map<Version, number>();
    const now = Date.now();
    for (const pod of this.informer?.list(this.o.namespace) ?? []) {
      const name = pod.metadata?.name;
      const v = this.versionOf(pod);
      if (name === undefined || v === undefined) continue;
      const r = this.snapshot(pod, v, now);
      next.set(name, r);
      if (r.state !== ReplicaState.STOPPING) podsPerVersion.set(v, (podsPerVersion.get(v) ?? 0) + 1);
    }
    for (const v of this.versions.values()) {
      // A placeholder stands for a started replica until its pod is seen.
      const seen = podsPerVersion.get(v) ?? 0;
      while (v.placeholders.length > 0 && seen + v.placeholders.length > v.desired) v.placeholders.shift();
      const missing = Math.max(0, v.desired - seen);
      while (v.placeholders.length < missing && v.placeholders.length < v.desired) v.placeholders.push(`${v.name}-pending-${++this.placeholderSeq}`);
      // The ReplicaSet cannot create pods (a quota, an admission refusal): the Deployment says so, and the missing replicas fail.
      const failure = this.deploymentInformer
        ?.get(v.name, this.o.namespace)
        ?.status?.conditions?.find((c) => c.type === "ReplicaFailure" && c.status === "True");
      for (const id of v.placeholders.slice(0, missing)) {
        const r =
          failure !== undefined
            ? create(ReplicaSchema, {
                id,
                modelName: v.modelName,
                modelVersion: v.modelVersion,
                state: ReplicaState.FAILED,
                message: `deployment ${v.name} cannot create pods: ${failure.reason ?? ""}: ${failure.message ?? ""}`,
              })
            : this.placeholder(v, id);
        const before = this.reported.get(id);
        next.set(id, before !== undefined && failure === undefined && before.state === ReplicaState.STARTING ? before : r);
      }
    }
    for (const id of this.stopping) if (!next.has(id)) this.stopping.delete(id);
    for (const [id, before] of this.reported) {
      if (!next.has(id)) {
        this.reported.delete(id);
        this.failures.delete(id);
        this.emit(before, true);
      }
    }
    for (const [id, r] of next) {
      const before = this.reported.get(id);
      if (before !== undefined && sameReplica(before, r)) continue;
      this.reported.set(id, r);
      this.emit(r, false);
    }
  }

  private snapshot(pod: V1Pod, v: Version, now: number): Replica {
    const name = pod.metadata?.name ?? "";
    // The same pod object was READY and is not being stopped since: the same replica (a pod being deleted is a new object).
    const ready = this.readySnapshots.get(pod);
    if (ready !== undefined && !this.stopping.has(name)) return ready;
    const status = pod.status;
    const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : now;
    const restarts = (status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);
    const endpoint = status?.podIP ? `${status.podIP}:${this.o.containerPort}` : "";
    const base = { id: name, modelName: v.modelName, modelVersion: v.modelVersion, endpoint, restarts, startedAtMs: BigInt(created) };
    if (pod.metadata?.deletionTimestamp !== undefined || this.stopping.has(name)) {
      return create(ReplicaSchema, { ...base, state: ReplicaState.STOPPING, message: "pod is being deleted" });
    }
    if (status?.phase === "Running" && (status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True")) {
      const replica = create(ReplicaSchema, { ...base, state: ReplicaState.READY, message: "" });
      this.readySnapshots.set(pod, replica);
      return replica;
    }
    const problem = podProblem(pod);
    if (problem !== undefined) return create(ReplicaSchema, { ...base, state: ReplicaState.FAILED, message: this.withEvents(name, problem) });
    if (now - created > this.o.startTimeoutMs) {
      return create(ReplicaSchema, {
        ...base,
        state: ReplicaState.FAILED,
        message: this.withEvents(name, `not ready ${Math.round((now - created) / 1000)} s after creation (${podSummary(pod)})`),
      });
    }
    const wasReady = this.reported.get(name)?.state === ReplicaState.READY || this.reported.get(name)?.state === ReplicaState.UNHEALTHY;
    return create(ReplicaSchema, { ...base, state: wasReady ? ReplicaState.UNHEALTHY : ReplicaState.STARTING, message: podSummary(pod) });
  }

  /** The reason, followed (once fetched) by the pod's last events. */
  private withEvents(podName: string, reason: string): string {
    const events = this.failures.get(podName);
    if (events === undefined && !this.failureLookups.has(podName)) {
      this.failureLookups.add(podName);
      this.core
        .listNamespacedEvent({ namespace: this.o.namespace, fieldSelector: `involvedObject.name=${podName}` })
        .then((list) => {
          const last = list.items
            .slice(-3)
            .map((e) => `${e.reason ?? ""}: ${e.message ?? ""}`)
            .join("; ");
          if (last === "") {
            // No event recorded yet: look again in a while.
            setTimeout(() => this.failureLookups.delete(podName), 2000).unref();
            return;
          }
          this.failures.set(podName, `; events: ${last}`);
          this.refresh();
        })
        .catch((err: unknown) => {
          this.failures.set(podName, `; events unavailable: ${describeError(err)}`);
          this.refresh();
        });
    }
    return `pod ${podName}: ${reason}${events ?? ""}`;
  }

  private emit(r: Replica, removed: boolean): void {
    for (const listener of this.listeners) {
      try {
        listener(copyReplica(r), removed);
      } catch (err) {
        this.o.logger.error({ err }, "replica listener failed");
      }
    }
  }
}

/**
 * What the local launch would run, with the image's paths: command, args, the CLIPPER_MODEL_* env and the model spec's
 * own (a command runtime's env, a Java model's JVM options), in the working directory the local launch uses (a command
 * runtime's working_dir, else the data dir; a Node module runs where node_modules is).
 */
export function defaultCommand(spec: ReplicaSpec, port: number, paths: LaunchPaths): PodCommand {
  const launch = launchCommand(spec, port, paths, {});
  return { command: [launch.command], args: launch.args, env: launch.env, workingDir: launch.cwd };
}

/** The artifact a runtime loads (a closure, a jar, an R model), by digest; undefined for runtimes that load none. */
export function artifactDigestOf(spec: ReplicaSpec): string | undefined {
  const kind = spec.runtime.kind;
  if (kind.case === "pythonClosure" || kind.case === "rFunction") return kind.value.artifactDigest;
  if (kind.case === "javaClass") return kind.value.jarDigest;
  return undefined;
}

/**
 * The pod's command with the artifact fetch in front (sdk/python/src/clipper_runtime/artifact_fetch.py, from the model
 * image): it downloads the artifact from the container-manager's artifact server to the path the runtime reads, checks
 * its sha256, and execs the runtime; a mismatch or an unreachable store fails the container with the reason. One fetch
 * program for every runtime, in the model container itself: the same image, no init container.
 */
export function withArtifactFetch(spec: ReplicaSpec, run: PodCommand, o: { artifactsUrl: string; imagePaths: LaunchPaths }): PodCommand {
  const digest = artifactDigestOf(spec);
  if (digest === undefined) return run;
  const fetchEnv = {
    CLIPPER_ARTIFACT_URL: `${o.artifactsUrl.replace(/\/+$/, "")}/artifacts/${digest}`,
    CLIPPER_ARTIFACT_SHA256: digest,
    CLIPPER_ARTIFACT_PATH: artifactPath(o.imagePaths.dataDir, digest),
  };
  return {
    ...run,
    command: [o.imagePaths.python, "-m", "clipper_runtime.artifact_fetch", "--", ...run.command],
    env: { PYTHONPATH: posix.join(o.imagePaths.repoRoot, "sdk", "python", "src"), ...run.env, ...fetchEnv },
  };
}

/**
 * `key=value,key2=value2` (the container-manager's --model-node-selector) as a nodeSelector; the error names what is
 * wrong. Keys and values as Kubernetes labels take them (a prefix/ name, a value of at most 63).
 */
export function parseNodeSelector(raw: string): Record<string, string> {
  const selector: Record<string, string> = {};
  for (const item of raw.split(",").map((x) => x.trim())) {
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq <= 0) throw new Error(`"${item}" is not key=value`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (!LABEL_KEY.test(key)) throw new Error(`"${key}" is not a label key (prefix/name, e.g. clipper.ai/pool)`);
    if (value !== "" && !LABEL_VALUE.test(value)) throw new Error(`"${value}" is not a label value (at most 63 of [A-Za-z0-9._-], alphanumeric ends)`);
    selector[key] = value;
  }
  return selector;
}

/**
 * `key=value:Effect,key:Effect,key` in kubectl taint's syntax (the container-manager's --model-tolerations): a
 * toleration of each taint (`key=value:Effect` tolerates exactly that taint, `key:Effect` any value of key with that
 * effect, `key` every effect); the error names what is wrong.
 */
export function parseTolerations(raw: string): V1Toleration[] {
  const tolerations: V1Toleration[] = [];
  for (const item of raw.split(",").map((x) => x.trim())) {
    if (item === "") continue;
    const m = /^([^=:]+)(?:=([^:]*))?(?::(.*))?$/.exec(item);
    const key = m?.[1];
    if (m === null || key === undefined || !LABEL_KEY.test(key)) throw new Error(`"${item}" is not key[=value][:Effect]`);
    const effect = m[3];
    if (effect !== undefined && !TAINT_EFFECTS.has(effect)) throw new Error(`"${item}": the effect must be one of ${[...TAINT_EFFECTS].join(", ")}`);
    const value = m[2];
    if (value !== undefined && value !== "" && !LABEL_VALUE.test(value)) throw new Error(`"${item}": "${value}" is not a taint value`);
    tolerations.push({
      key,
      operator: value !== undefined ? "Equal" : "Exists",
      ...(value !== undefined ? { value } : {}),
      ...(effect !== undefined ? { effect } : {}),
    });
  }
  return tolerations;
}

const LABEL_NAME = "[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?";
const LABEL_KEY = new RegExp(`^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?${LABEL_NAME}$`);
const LABEL_VALUE = new RegExp(`^${LABEL_NAME}$`);
const TAINT_EFFECTS = new Set(["NoSchedule", "PreferNoSchedule", "NoExecute"]);

/** A reason this pod will not become ready by itself, or undefined. */
export function podProblem(pod: V1Pod): string | undefined {
  const status = pod.status;
  if (status?.phase === "Failed") return `pod failed: ${status.reason ?? ""} ${status.message ?? ""}`.trim();
  const unschedulable = (status?.conditions ?? []).find((c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable");
  if (unschedulable !== undefined) return `unschedulable: ${unschedulable.message ?? ""}`;
  for (const c of status?.containerStatuses ?? []) {
    const waiting = c.state?.waiting;
    if (waiting?.reason === undefined || !FATAL_WAITING.has(waiting.reason)) continue;
    // The kubelet says CrashLoopBackOff from the first crash on (while it waits to restart the container): a model that
    // crashed once is restarted, as the local backend restarts it; one that keeps crashing is FAILED.
    if (waiting.reason === "CrashLoopBackOff" && (c.restartCount ?? 0) < CRASH_LOOP_FAILED_AFTER_RESTARTS) continue;
    const crashLoop = waiting.reason === "CrashLoopBackOff";
    // What the container said as it died (its termination message, or its last output: FallbackToLogsOnError).
    const lastWords = crashLoop ? c.lastState?.terminated?.message?.trim() : undefined;
    return `container ${c.name} ${waiting.reason}: ${waiting.message ?? ""}${crashLoop ? ` (${c.restartCount} restarts)` : ""}${lastWords ? `; last exit ${c.lastState?.terminated?.exitCode}: ${lastWords}` : ""}`.trim();
  }
  return undefined;
}

function podSummary(pod: V1Pod): string {
  const parts = [`phase ${pod.status?.phase ?? "unknown"}`];
  for (const c of pod.status?.conditions ?? []) if (c.status !== "True") parts.push(`${c.type} ${c.status}${c.reason ? ` (${c.reason})` : ""}`);
  for (const c of pod.status?.containerStatuses ?? []) if (c.state?.waiting?.reason) parts.push(`${c.name} waiting: ${c.state.waiting.reason}`);
  return parts.join(", ");
}

/**
 * A Replica holds only scalars, so a spread is a whole copy, many times cheaper than clone() (which walks the schema):
 * replicas() runs over every pod on each registry change, replica report and rollout step.
 */
function copyReplica(r: Replica): Replica {
  return { ...r };
}

function sameReplica(a: Replica, b: Replica): boolean {
  return (
    a.state === b.state &&
    a.endpoint === b.endpoint &&
    a.message === b.message &&
    a.restarts === b.restarts &&
    a.startedAtMs === b.startedAtMs &&
    a.modelName === b.modelName &&
    a.modelVersion === b.modelVersion
  );
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.code === "number") return e.code;
  if (typeof e?.statusCode === "number") return e.statusCode;
  return undefined;
}

function ignoreNotFound(err: unknown): void {
  if (statusOf(err) !== 404) throw err;
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; body?: unknown; message?: unknown };
  if (typeof e?.code === "number") return `HTTP ${e.code}: ${typeof e.body === "string" ? e.body.slice(0, 500) : String(e.message)}`;
  return String(err);
}

/** The model spec's own requests and limits, or undefined when it declares none. */
export function declaredResources(spec: ReplicaSpec): V1ResourceRequirements | undefined {
  const requests = { ...(spec.resources?.requests ?? {}) };
  const limits = { ...(spec.resources?.limits ?? {}) };
  if (Object.keys(requests).length === 0 && Object.keys(limits).length === 0) return undefined;
  return { ...(Object.keys(requests).length > 0 ? { requests } : {}), ...(Object.keys(limits).length > 0 ? { limits } : {}) };
}
