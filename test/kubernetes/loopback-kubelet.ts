/**
 * A test agent playing the kubelet for one node of the loopback cluster, so that predictions can go
 * through pods the scheduler placed (kwok's pods run nothing; docs/kubernetes.md, "The data path on
 * loopback"). It registers its node (no kwok annotation, so kwok leaves it alone), keeps its Ready
 * condition and Lease fresh, watches the pods bound to it, and runs each pod's one container as a
 * local process on a loopback address of the pod's own (127.A.B.N: all of 127/8 is loopback, so every
 * pod keeps its container port). It reports that address as the pod IP, the phase, the container's
 * state and restarts, and the Ready condition from a real grpc.health.v1 check of the pod's
 * readinessProbe (which kwok never executes). A pod deleted: SIGTERM to its process group, SIGKILL
 * after the grace period (bounded), then the pod's final deletion, as the kubelet does.
 *
 * What it does not do: images (the container's command runs on this machine, with the image's paths
 * mapped to directories here by `pathMap`), isolation (the process is the test's user, no cgroup, no
 * network namespace), volumes other than emptyDir (each emptyDir is a directory of the pod's own here, its mountPath
 * mapped to it as pathMap maps the image's paths), init containers, more than one container per pod, probes other than
 * gRPC, resource limits. Pods it cannot run get a clear status reason, never a silent wait.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  V1MicroTime,
  type V1Pod,
  type V1Taint,
  Watch,
} from "@kubernetes/client-node";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { createGrpcTransport, type GrpcTransport } from "../../services/shared/index.js";
import { signalGroup } from "./loopback-cluster.js";
import {
  AddressPool,
  type ContainerPhase,
  type EnvSources,
  envSourceNames,
  type LastTermination,
  LineRing,
  type LocalProcess,
  localProcess,
  type ProbeAction,
  podStatus,
  signalNumber,
} from "./loopback-pod.js";

export interface LoopbackKubeletOptions {
  /** An identity that may register nodes, renew leases, and write pods' status and delete them (the test's admin). */
  kubeConfig: KubeConfig;
  /** Image path prefix → directory on this machine (e.g. /opt/clipper → the checkout), in command, args, env and workingDir. */
  pathMap: Record<string, string>;
  /** A container command (its argv[0], after pathMap) → the executable here (e.g. python3 → the repo's .venv Python). */
  commandMap?: Record<string, string>;
  nodeName?: string;
  /** Labels on the node, beside kubernetes.io/hostname (a node pool's label, for the model pods' nodeSelector). */
  labels?: Record<string, string>;
  /** Taints on the node (so that only pods tolerating them land there). */
  taints?: V1Taint[];
  /** The "image's" environment under the pod's (PATH, HOME, LANG); default: this process's. */
  baseEnv?: Record<string, string>;
  /** Pods this node takes (its pods capacity, and the bound on processes and addresses). */
  maxPods?: number;
  /** Cap on a pod's terminationGracePeriodSeconds before SIGKILL. */
  maxGraceMs?: number;
  /** How often the node's Lease and Ready condition are renewed. */
  heartbeatMs?: number;
  /** A crashed container is started again after this, doubling up to restartBackoffMaxMs (restartPolicy Always / OnFailure). */
  restartBackoffInitialMs?: number;
  restartBackoffMaxMs?: number;
  /** Lines of output kept per pod (for logs() and a crashed container's termination message). */
  logLines?: number;
  /**
   * Cluster DNS's stand-in: the address a Service's name (`name`, `name.ns`, `name.ns.svc[.cluster.local]`) in a pod
   * of `namespace` resolves to, or undefined (the name stays as written). Applied to `host:port` in command, args and env
   * (a LoopbackServiceProxy's resolve(): each Service's loopback address, forwarded to its ready endpoints).
   */
  resolveHost?: (namespace: string, host: string) => string | undefined;
  /** Progress and problems, one line each (default: none). */
  log?: (line: string) => void;
}

/** Every default in one place. */
export const LOOPBACK_KUBELET_DEFAULTS = {
  nodeName: "loopback-node-0",
  maxPods: 16,
  maxGraceMs: 10_000,
  heartbeatMs: 10_000,
  restartBackoffInitialMs: 1_000,
  restartBackoffMaxMs: 10_000,
  logLines: 200,
  /** The kubelet's lease duration. */
  leaseDurationSeconds: 40,
  /** Kubernetes' default terminationGracePeriodSeconds. */
  graceSeconds: 30,
  /** A crashed container's termination message: its last output, at most this many bytes (as FallbackToLogsOnError). */
  terminationMessageBytes: 2048,
} as const;

/** One pod as the agent runs it. */
export interface RunningPod {
  namespace: string;
  name: string;
  uid: string;
  address: string | undefined;
  /** The current process (its process group's id), while one runs. */
  pid: number | undefined;
  ready: boolean;
  restarts: number;
  /** When the agent first saw the pod, and when it first reported it Ready (ms since the epoch). */
  seenAtMs: number;
  firstReadyAtMs: number | undefined;
}

interface PodRun {
  pod: V1Pod;
  uid: string;
  address: string | undefined;
  spec: LocalProcess | undefined;
  child: ChildProcess | undefined;
  exited: Promise<void> | undefined;
  container: ContainerPhase;
  startedAt: Date;
  startTime: Date;
  ready: boolean;
  successes: number;
  failures: number;
  restarts: number;
  last: LastTermination | undefined;
  backoffMs: number;
  output: LineRing;
  probeTimer: NodeJS.Timeout | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  health: GrpcTransport | undefined;
  terminating: boolean;
  seenAtMs: number;
  firstReadyAtMs: number | undefined;
  /** Serializes this pod's status writes. */
  writes: Promise<void>;
}

/** Kills the listed process groups and removes the agent's dir if the test process dies without close() (a crash, SIGKILL). */
const ORPHAN_WATCHDOG = `
parent="$1"; dir="$2"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
for g in $(cat "$dir/groups" 2>/dev/null); do kill -KILL -- "-$g" 2>/dev/null; done
rm -rf "$dir"
`;

export class LoopbackKubelet {
  readonly nodeName: string;
  private readonly o: Required<Omit<LoopbackKubeletOptions, "log">> & { log: (line: string) => void };
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly runs = new Map<string, PodRun>();
  private readonly addresses: AddressPool;
  private readonly dir = mkdtempSync(join(tmpdir(), "clipper-loopback-kubelet-"));
  private informer: ListWatch<V1Pod> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private watchdog: ChildProcess | undefined;
  private closed = false;
  private readonly onExit = () => this.killAllNow();

  constructor(options: LoopbackKubeletOptions) {
    const d = LOOPBACK_KUBELET_DEFAULTS;
    const baseEnv: Record<string, string> = {};
    for (const key of ["PATH", "HOME", "LANG"]) if (process.env[key] !== undefined) baseEnv[key] = process.env[key] as string;
    this.o = {
      nodeName: d.nodeName,
      labels: {},
      taints: [],
      commandMap: {},
      resolveHost: () => undefined,
      baseEnv,
      maxPods: d.maxPods,
      maxGraceMs: d.maxGraceMs,
      heartbeatMs: d.heartbeatMs,
      restartBackoffInitialMs: d.restartBackoffInitialMs,
      restartBackoffMaxMs: d.restartBackoffMaxMs,
      logLines: d.logLines,
      log: () => {},
      ...options,
    };
    this.nodeName = this.o.nodeName;
    this.addresses = new AddressPool(this.o.maxPods);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.coordination = options.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  /** Registers the node, waits until it is Ready and its taints are only the given ones, and starts watching its pods. */
  async start(): Promise<void> {
    process.once("exit", this.onExit);
    this.watchdog = spawn("bash", ["-c", ORPHAN_WATCHDOG, "watchdog", String(process.pid), this.dir], { detached: true, stdio: "ignore" });
    this.watchdog.unref();
    await this.core.createNode({
      body: {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: this.nodeName, labels: { "kubernetes.io/hostname": this.nodeName, "kubernetes.io/os": "linux", ...this.o.labels } },
        spec: { taints: this.o.taints },
        // 4 CPUs advertised: the processes share this machine and nothing is reserved for a request, but the scheduler
        // counts requests, and two systems side by side request 2.4 CPUs (test_e2e_kubernetes.py).
        status: {
          capacity: { cpu: "4", memory: "4Gi", pods: String(this.o.maxPods) },
          allocatable: { cpu: "4", memory: "4Gi", pods: String(this.o.maxPods) },
          addresses: [
            { type: "InternalIP", address: "127.0.0.1" },
            { type: "Hostname", address: this.nodeName },
          ],
        },
      },
    });
    await this.beat();
    this.heartbeat = setInterval(() => this.beat().catch((err: unknown) => this.o.log(`heartbeat failed: ${String(err)}`)), this.o.heartbeatMs);
    this.heartbeat.unref();
    this.watchPods();
    await this.informer?.start();
    // The node lifecycle controller removes node.kubernetes.io/not-ready once it sees the Ready condition.
    const until = Date.now() + 30_000;
    for (;;) {
      const node = await this.core.readNode({ name: this.nodeName });
      const foreign = (node.spec?.taints ?? []).filter((t) => !this.o.taints.some((own) => own.key === t.key && own.effect === t.effect));
      if (foreign.length === 0 && node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) break;
      if (Date.now() > until) throw new Error(`node ${this.nodeName} not Ready and untainted in 30 s: ${JSON.stringify(node.spec?.taints ?? [])}`);
      await sleep(200);
    }
    this.o.log(`node ${this.nodeName} Ready`);
  }

  /** The pods this node runs now. */
  pods(): RunningPod[] {
    return [...this.runs.values()].map((r) => ({
      namespace: r.pod.metadata?.namespace ?? "",
      name: r.pod.metadata?.name ?? "",
      uid: r.uid,
      address: r.address,
      pid: r.child?.exitCode === null && r.child.signalCode === null ? r.child.pid : undefined,
      ready: r.ready,
      restarts: r.restarts,
      seenAtMs: r.seenAtMs,
      firstReadyAtMs: r.firstReadyAtMs,
    }));
  }

  /** A pod's last lines of output (stdout and stderr), or undefined if it does not run here. */
  logs(podName: string): string[] | undefined {
    return [...this.runs.values()].find((r) => r.pod.metadata?.name === podName)?.output.last();
  }

  /** Stops watching, kills every process it started (SIGTERM, SIGKILL after the grace cap), and deletes its node. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    await this.informer?.stop();
    await Promise.all([...this.runs.values()].map((r) => this.terminate(r, Math.min(2_000, this.o.maxGraceMs))));
    await this.core.deleteNode({ name: this.nodeName }).catch(() => {});
    process.removeListener("exit", this.onExit);
    if (this.watchdog?.pid) signalGroup(this.watchdog.pid, "SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------------------------

  private async beat(): Promise<void> {
    const now = new Date();
    const conditions = [
      { type: "Ready", status: "True", reason: "KubeletReady", message: "loopback kubelet is posting ready status" },
      { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory" },
      { type: "DiskPressure", status: "False", reason: "KubeletHasNoDiskPressure" },
      { type: "PIDPressure", status: "False", reason: "KubeletHasSufficientPID" },
    ].map((c) => ({ ...c, lastHeartbeatTime: now, lastTransitionTime: now }));
    await this.core.patchNodeStatus(
      { name: this.nodeName, body: { status: { conditions } } },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    const lease = {
      metadata: { name: this.nodeName, namespace: "kube-node-lease" },
      spec: { holderIdentity: this.nodeName, leaseDurationSeconds: LOOPBACK_KUBELET_DEFAULTS.leaseDurationSeconds, renewTime: new V1MicroTime(now.getTime()) },
    };
    try {
      const current = await this.coordination.readNamespacedLease({ name: this.nodeName, namespace: "kube-node-lease" });
      await this.coordination.replaceNamespacedLease({
        name: this.nodeName,
        namespace: "kube-node-lease",
        body: { ...lease, metadata: { ...lease.metadata, resourceVersion: current.metadata?.resourceVersion ?? "" } },
      });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      await this.coordination.createNamespacedLease({ namespace: "kube-node-lease", body: lease });
    }
  }

  /** A list-then-watch of the pods bound to this node; restarted after an error (a broken watch), as the backend's. */
  private watchPods(): void {
    const fieldSelector = `spec.nodeName=${this.nodeName}`;
    const informer = new ListWatch<V1Pod>(
      "/api/v1/pods",
      new Watch(this.o.kubeConfig),
      () => this.core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    informer.on("add", (pod) => this.podChanged(pod));
    informer.on("update", (pod) => this.podChanged(pod));
    informer.on("delete", (pod) => this.podGone(pod));
    informer.on("error", (err: unknown) => {
      if (this.closed) return;
      this.o.log(`pod watch failed, restarting in 1 s: ${String(err)}`);
      setTimeout(() => {
        if (!this.closed) informer.start().catch(() => {});
      }, 1_000).unref();
    });
    this.informer = informer;
  }

  private podChanged(pod: V1Pod): void {
    if (this.closed) return;
    const uid = pod.metadata?.uid ?? "";
    const run = this.runs.get(uid);
    if (run !== undefined) run.pod = pod;
    if (pod.metadata?.deletionTimestamp !== undefined) {
      if (run !== undefined) void this.deletePod(run);
      else void this.finalDelete(pod);
      return;
    }
    if (run === undefined && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed") void this.admit(pod);
  }

  private podGone(pod: V1Pod): void {
    const run = this.runs.get(pod.metadata?.uid ?? "");
    if (run !== undefined) void this.terminate(run, this.graceMs(run.pod));
  }

  private async admit(pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? "";
    const run: PodRun = {
      pod,
      uid,
      address: undefined,
      spec: undefined,
      child: undefined,
      exited: undefined,
      container: { kind: "backoff", message: "starting" },
      startedAt: new Date(),
      startTime: new Date(),
      ready: false,
      successes: 0,
      failures: 0,
      restarts: 0,
      last: undefined,
      backoffMs: this.o.restartBackoffInitialMs,
      output: new LineRing(this.o.logLines),
      probeTimer: undefined,
      restartTimer: undefined,
      health: undefined,
      terminating: false,
      seenAtMs: Date.now(),
      firstReadyAtMs: undefined,
      writes: Promise.resolve(),
    };
    if (this.runs.size >= this.o.maxPods) {
      await this.writeStatus(run, { phase: "Failed", reason: "OutOfpods", message: `node ${this.nodeName} runs at most ${this.o.maxPods} pods` });
      return;
    }
    this.runs.set(uid, run);
    const port = pod.spec?.containers[0]?.ports?.[0]?.containerPort;
    run.address = await this.addresses.take((address) => (port === undefined ? Promise.resolve(true) : portFree(address, port)));
    if (run.terminating) {
      // Deleted while its address was being found.
      if (run.address !== undefined) this.addresses.release(run.address);
      return;
    }
    if (run.address === undefined) {
      run.container = { kind: "config-error", message: `no free loopback address left on ${this.nodeName}` };
      await this.report(run);
      return;
    }
    const namespace = pod.metadata?.namespace ?? "";
    const container = pod.spec?.containers[0];
    const prepared = await Promise.all([
      container === undefined ? undefined : this.envSources(namespace, container),
      pod.spec?.automountServiceAccountToken === false ? undefined : this.serviceAccountKubeconfig(pod),
    ]).catch((err: unknown) => `cannot prepare the pod's environment: ${String(err)}`);
    if (typeof prepared === "string") {
      run.container = { kind: "config-error", message: prepared };
      await this.report(run);
      return;
    }
    const [sources, serviceAccountKubeconfig] = prepared;
    const spec = localProcess(pod, run.address, {
      ...this.o,
      nodeName: this.nodeName,
      sources,
      resolveHost: (host) => this.o.resolveHost(namespace, host),
      serviceAccountKubeconfig,
      emptyDirs: this.emptyDirs(pod),
    });
    if (typeof spec === "string") {
      run.container = { kind: "config-error", message: spec };
      this.o.log(`pod ${pod.metadata?.name}: ${spec}`);
      await this.report(run);
      return;
    }
    run.spec = spec;
    this.launch(run);
  }

  /** A fresh directory per emptyDir volume of the pod, by volume name (removed with the pod). */
  private emptyDirs(pod: V1Pod): Record<string, string> {
    const dirs: Record<string, string> = {};
    for (const v of pod.spec?.volumes ?? []) {
      if (v.emptyDir === undefined) continue;
      dirs[v.name] = join(this.dir, `${pod.metadata?.uid ?? "pod"}-volumes`, v.name);
      mkdirSync(dirs[v.name] as string, { recursive: true });
    }
    return dirs;
  }

  /** The ConfigMaps and Secrets the container's env reads (one not found is left out: localProcess then names it). */
  private async envSources(namespace: string, container: V1Container): Promise<EnvSources> {
    const names = envSourceNames(container);
    const notFound = (err: unknown) => {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    };
    const configMaps = await Promise.all(names.configMaps.map((name) => this.core.readNamespacedConfigMap({ name, namespace }).catch(notFound)));
    const secrets = await Promise.all(names.secrets.map((name) => this.core.readNamespacedSecret({ name, namespace }).catch(notFound)));
    const decode = (data: Record<string, string> | undefined) =>
      Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
    return {
      configMaps: Object.fromEntries(configMaps.flatMap((c) => (c?.metadata?.name === undefined ? [] : [[c.metadata.name, c.data ?? {}]]))),
      secrets: Object.fromEntries(secrets.flatMap((s) => (s?.metadata?.name === undefined ? [] : [[s.metadata.name, decode(s.data)]]))),
    };
  }

  /**
   * A token of the pod's ServiceAccount bound to the pod (a TokenRequest, as the kubelet's projected token), in a kubeconfig
   * for this apiserver: the stand-in for /var/run/secrets/kubernetes.io/serviceaccount, which the clients read at a fixed path.
   */
  private async serviceAccountKubeconfig(pod: V1Pod): Promise<string> {
    const namespace = pod.metadata?.namespace ?? "";
    const serviceAccount = pod.spec?.serviceAccountName ?? "default";
    const boundObjectRef = { apiVersion: "v1", kind: "Pod", name: pod.metadata?.name ?? "", uid: pod.metadata?.uid ?? "" };
    const request = await this.core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600, boundObjectRef } },
    });
    const cluster = this.o.kubeConfig.getCurrentCluster();
    if (cluster === null) throw new Error("the loopback kubelet's kubeconfig has no current cluster");
    const ca =
      cluster.caData !== undefined
        ? { "certificate-authority-data": cluster.caData }
        : cluster.caFile !== undefined
          ? { "certificate-authority": cluster.caFile }
          : {};
    const kubeconfig = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "in-cluster", cluster: { server: cluster.server, ...ca } }],
      users: [{ name: serviceAccount, user: { token: request.status?.token ?? "" } }],
      contexts: [{ name: "in-cluster", context: { cluster: "in-cluster", user: serviceAccount, namespace } }],
      "current-context": "in-cluster",
    };
    const path = join(this.dir, `${pod.metadata?.uid ?? "pod"}.kubeconfig`);
    writeFileSync(path, JSON.stringify(kubeconfig), { mode: 0o600 });
    return path;
  }

  private launch(run: PodRun): void {
    const spec = run.spec;
    if (spec === undefined || run.terminating || this.closed) return;
    const name = run.pod.metadata?.name ?? "";
    const child = spawn(spec.command, spec.args, { env: spec.env, cwd: spec.cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    run.child = child;
    run.startedAt = new Date();
    run.container = { kind: "running", startedAt: run.startedAt };
    run.ready = false;
    run.successes = 0;
    run.failures = 0;
    for (const stream of [child.stdout, child.stderr]) {
      let partial = "";
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        const lines = (partial + chunk).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) run.output.push(line);
      });
    }
    run.exited = new Promise((resolve) => {
      child.once("error", (err) => {
        run.output.push(`loopback kubelet: cannot start ${spec.command}: ${err.message}`);
        this.containerExited(run, child, 128, undefined);
        resolve();
      });
      child.once("exit", (code, signal) => {
        // A container killed by a signal exits 128 + its number, as the runtimes report it.
        this.containerExited(run, child, code ?? 128 + signalNumber(signal ?? ""), signal ?? undefined);
        resolve();
      });
    });
    this.writeGroups();
    this.o.log(`pod ${name}: started ${spec.command} as pid ${child.pid} on ${run.address}`);
    void this.report(run);
    const probe = spec.readiness;
    const first = setTimeout(() => this.probe(run, child), probe.initialDelayMs);
    first.unref();
    run.probeTimer = first;
  }

  /** One readiness check, then the next after the probe's period; Ready after successThreshold, not after failureThreshold. */
  private probe(run: PodRun, child: ChildProcess): void {
    if (run.child !== child || run.terminating || this.closed) return;
    const check = run.spec?.readiness;
    if (check === undefined) return;
    const next = () => {
      if (run.child !== child || run.terminating || this.closed) return;
      const t = setTimeout(() => this.probe(run, child), check.periodMs);
      t.unref();
      run.probeTimer = t;
    };
    const action = check.action;
    if (action === undefined) {
      this.setReady(run, true);
      return;
    }
    this.check(run, action, check.timeoutMs)
      .catch(() => false)
      .then((ok) => {
        if (run.child !== child) return;
        if (ok) {
          run.failures = 0;
          run.successes++;
          if (run.successes >= check.successThreshold) this.setReady(run, true);
        } else {
          run.successes = 0;
          run.failures++;
          if (run.failures >= check.failureThreshold) this.setReady(run, false);
        }
        next();
      });
  }

  /** One probe of the pod's address: true when it answers as ready within the timeout. */
  private check(run: PodRun, action: ProbeAction, timeoutMs: number): Promise<boolean> {
    const address = run.address ?? "";
    if (action.kind === "grpc") {
      run.health ??= createGrpcTransport({ address: `${address}:${action.port}` });
      return createClient(Health, run.health)
        .check({ service: action.service }, { timeoutMs })
        .then((res) => res.status === HealthCheckResponse_ServingStatus.SERVING);
    }
    if (action.kind === "http") {
      return fetch(`http://${address}:${action.port}${action.path}`, { signal: AbortSignal.timeout(timeoutMs) }).then(async (res) => {
        await res.body?.cancel();
        return res.status >= 200 && res.status < 400;
      });
    }
    return new Promise((resolve) => {
      const socket = connect({ host: address, port: action.port, timeout: timeoutMs });
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.once("connect", () => done(true));
      socket.once("timeout", () => done(false));
      socket.once("error", () => done(false));
    });
  }

  private setReady(run: PodRun, ready: boolean): void {
    if (run.ready === ready) return;
    run.ready = ready;
    if (ready) run.firstReadyAtMs ??= Date.now();
    this.o.log(`pod ${run.pod.metadata?.name}: ${ready ? "ready" : "not ready"}`);
    void this.report(run);
  }

  private containerExited(run: PodRun, child: ChildProcess, exitCode: number, signal: string | undefined): void {
    if (run.child !== child) return;
    clearTimeout(run.probeTimer);
    run.ready = false;
    this.writeGroups();
    if (run.terminating || this.closed) return;
    const finishedAt = new Date();
    run.last = {
      exitCode,
      signal,
      startedAt: run.startedAt,
      finishedAt,
      message: run.output.tail(LOOPBACK_KUBELET_DEFAULTS.terminationMessageBytes),
    };
    const policy = run.pod.spec?.restartPolicy ?? "Always";
    this.o.log(`pod ${run.pod.metadata?.name}: container exited with ${signal ?? exitCode}`);
    if (policy === "Never" || (policy === "OnFailure" && exitCode === 0)) {
      run.container = { kind: "exited", exitCode, finishedAt };
      void this.report(run);
      return;
    }
    // A container that ran a while starts again at the initial backoff, as the kubelet's resets.
    if (finishedAt.getTime() - run.startedAt.getTime() > 30_000) run.backoffMs = this.o.restartBackoffInitialMs;
    const delay = run.backoffMs;
    run.backoffMs = Math.min(this.o.restartBackoffMaxMs, run.backoffMs * 2);
    run.restarts++;
    run.container = { kind: "backoff", message: `back-off ${Math.round(delay / 1000)}s restarting failed container` };
    void this.report(run);
    run.restartTimer = setTimeout(() => this.launch(run), delay);
    run.restartTimer.unref();
  }

  /** The pod is being deleted: its process goes (SIGTERM, SIGKILL after the grace period), then the pod object. */
  private async deletePod(run: PodRun): Promise<void> {
    if (run.terminating) return;
    await this.terminate(run, this.graceMs(run.pod));
    await this.finalDelete(run.pod);
  }

  private async finalDelete(pod: V1Pod): Promise<void> {
    await this.core
      .deleteNamespacedPod({
        name: pod.metadata?.name ?? "",
        namespace: pod.metadata?.namespace ?? "",
        // In the body: the apiserver reads DeleteOptions from the body when there is one, and the query's grace is then ignored.
        body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid ?? "" } },
      })
      .catch((err: unknown) => {
        const code = (err as { code?: number }).code;
        if (code !== 404 && code !== 409) this.o.log(`final delete of ${pod.metadata?.name} failed: ${String(err)}`);
      });
  }

  private graceMs(pod: V1Pod): number {
    const seconds = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? LOOPBACK_KUBELET_DEFAULTS.graceSeconds;
    return Math.min(seconds * 1000, this.o.maxGraceMs);
  }

  private async terminate(run: PodRun, graceMs: number): Promise<void> {
    if (run.terminating) return;
    run.terminating = true;
    clearTimeout(run.probeTimer);
    clearTimeout(run.restartTimer);
    const child = run.child;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      signalGroup(child.pid, "SIGTERM");
      const graceful = await Promise.race([run.exited?.then(() => true), sleep(graceMs).then(() => false)]);
      signalGroup(child.pid, "SIGKILL");
      if (!graceful) await Promise.race([run.exited, sleep(5_000)]);
      this.o.log(`pod ${run.pod.metadata?.name}: process ${child.pid} ${graceful ? "exited on SIGTERM" : "killed after the grace period"}`);
    }
    run.health?.close();
    if (run.address !== undefined) this.addresses.release(run.address);
    this.runs.delete(run.uid);
    rmSync(join(this.dir, `${run.uid}-volumes`), { recursive: true, force: true });
    this.writeGroups();
  }

  private report(run: PodRun): Promise<void> {
    return this.writeStatus(
      run,
      podStatus({
        pod: run.pod,
        address: run.address,
        container: run.container,
        ready: run.ready,
        restarts: run.restarts,
        last: run.last,
        startTime: run.startTime,
      }),
    );
  }

  /** A merge patch of the pod's status (serialized per pod, so the last state written is the last state known). */
  private writeStatus(run: PodRun, status: NonNullable<V1Pod["status"]>): Promise<void> {
    const write = async () => {
      if (this.closed && run.terminating) return;
      await this.core
        .patchNamespacedPodStatus(
          { name: run.pod.metadata?.name ?? "", namespace: run.pod.metadata?.namespace ?? "", body: { status } },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        )
        .catch((err: unknown) => {
          if ((err as { code?: number }).code !== 404) this.o.log(`status of ${run.pod.metadata?.name} not written: ${String(err)}`);
        });
    };
    run.writes = run.writes.then(write);
    return run.writes;
  }

  private writeGroups(): void {
    if (this.closed && this.runs.size === 0) return;
    const groups = [...this.runs.values()].map((r) => r.child).filter((c) => c?.pid !== undefined && c.exitCode === null && c.signalCode === null);
    try {
      writeFileSync(join(this.dir, "groups"), `${groups.map((c) => c?.pid).join("\n")}\n`);
    } catch {
      // the dir is gone: closed
    }
  }

  private killAllNow(): void {
    for (const run of this.runs.values()) if (run.child?.pid !== undefined) signalGroup(run.child.pid, "SIGKILL");
    if (this.watchdog?.pid) signalGroup(this.watchdog.pid, "SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Nothing listens on address:port (a bind succeeds). */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
