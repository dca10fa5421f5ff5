/**
 * A real Kubernetes cluster on loopback for integration tests: etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler (the real binaries, built by
 * scripts/kubernetes/build-cluster-binaries.sh), and kwok playing the kubelets of fake nodes.
 * Every listener is on 127.0.0.1 on a free port; every file is in one temp dir; stop() kills
 * every process it started (by process group) and removes the dir. See docs/kubernetes-testing.md.
 *
 * kwok's pods are not processes: their IPs come from kwok's --cidr and are never dialled.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const KUBERNETES_VERSION = "v1.37.2";
export const ETCD_VERSION = "v3.6.16";
export const KWOK_VERSION = "v0.8.0";
/** The annotation kwok selects its nodes by (--manage-nodes-with-annotation-selector). */
export const KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node";
/** kwok's pod IPs come from here. They are fake: nothing listens there, never dial them. */
export const KWOK_POD_CIDR = "10.244.0.0/16";
export const SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24";

const BUILD_SCRIPT = "scripts/kubernetes/build-cluster-binaries.sh";

// ---------------------------------------------------------------------------------------------
// Finding the binaries

export interface ClusterBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kwok: string;
  kubectl: string;
  /** kwok's stages (node initialise, heartbeat with lease, pod ready/complete/delete), concatenated. */
  kwokStages: string;
}

/** ${CLIPPER_K8S_CACHE:-$HOME/.cache/clipper-k8s}/v1.37.2: the same default as the build script. */
export function clusterCacheDir(): string {
  return join(process.env.CLIPPER_K8S_CACHE || join(homedir(), ".cache", "clipper-k8s"), KUBERNETES_VERSION);
}

export class ClusterBinariesMissing extends Error {
  constructor(readonly missing: readonly string[]) {
    super(
      `Kubernetes test binaries missing in ${clusterCacheDir()}: ${missing.join(", ")}. ` +
        `Build them once with ${BUILD_SCRIPT} (about 15 min cold on 2 cores; CLIPPER_K8S_CACHE moves the cache).`,
    );
    this.name = "ClusterBinariesMissing";
  }
}

/** The binaries in the cache dir, or a ClusterBinariesMissing error naming what is missing. */
export function findClusterBinaries(): ClusterBinaries | ClusterBinariesMissing {
  const root = clusterCacheDir();
  const dir = join(root, "bin");
  const versions: Record<string, string> = {
    etcd: ETCD_VERSION,
    "kube-apiserver": KUBERNETES_VERSION,
    "kube-controller-manager": KUBERNETES_VERSION,
    "kube-scheduler": KUBERNETES_VERSION,
    kwok: KWOK_VERSION,
    kubectl: KUBERNETES_VERSION,
  };
  const missing: string[] = [];
  for (const [name, version] of Object.entries(versions)) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      // The stamp the build script writes once the binary is built and checked: "<name> <version> ...".
      const stamp = readFileSync(join(dir, `.${name}.stamp`), "utf8");
      if (!stamp.startsWith(`${name} ${version} `)) missing.push(`${name} (stamp is not ${version})`);
    } catch {
      missing.push(name);
    }
  }
  const kwokStages = join(root, "kwok-stages.yaml");
  if (!existsSync(kwokStages)) missing.push("kwok-stages.yaml");
  if (missing.length > 0) return new ClusterBinariesMissing(missing);
  return {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
    kubeControllerManager: join(dir, "kube-controller-manager"),
    kubeScheduler: join(dir, "kube-scheduler"),
    kwok: join(dir, "kwok"),
    kubectl: join(dir, "kubectl"),
    kwokStages,
  };
}

/** The binaries, or throws ClusterBinariesMissing (whose message says to run the build script). */
export function clusterBinaries(): ClusterBinaries {
  const found = findClusterBinaries();
  if (found instanceof Error) throw found;
  return found;
}

/** CLIPPER_K8S_TESTS=1 (set by .ci/run after building): Kubernetes tests must run, missing binaries fail them. */
export function kubernetesTestsRequired(): boolean {
  return process.env.CLIPPER_K8S_TESTS === "1";
}

/**
 * For `describe.skipIf(skipKubernetesTests())`: true only when the binaries are missing and
 * CLIPPER_K8S_TESTS is not 1. With CLIPPER_K8S_TESTS=1 and binaries missing this is false, so
 * the suite runs and startLoopbackCluster() fails with ClusterBinariesMissing's message.
 */
export function skipKubernetesTests(): boolean {
  if (kubernetesTestsRequired()) return false;
  const found = findClusterBinaries();
  if (found instanceof Error) {
    console.warn(`skipping Kubernetes tests: ${found.message} Set CLIPPER_K8S_TESTS=1 to make this a failure.`);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The cluster

export interface NodeCapacity {
  cpu: string;
  memory: string;
  pods: string;
}

export interface LoopbackClusterOptions {
  /** Default: clusterBinaries(). */
  binaries?: ClusterBinaries;
  /** Fake nodes kwok plays (default 1), named `${nodeNamePrefix}0`, `${nodeNamePrefix}1`, ... */
  nodes?: number;
  nodeNamePrefix?: string;
  /** Each fake node's capacity and allocatable (default 16 cpu, 64Gi, 500 pods). */
  nodeCapacity?: NodeCapacity;
  /** Bound on the whole start (default 120 s); each wait inside it is bounded too. */
  startTimeoutMs?: number;
  /** Keep the temp dir (logs, etcd data, kubeconfigs) after stop(); also CLIPPER_K8S_KEEP=1. */
  keepTempDir?: boolean;
  /** Extra flags per component, appended after the harness's own. */
  extraArgs?: Partial<Record<ComponentName, readonly string[]>>;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export type ComponentName = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kwok";

export interface ApiResponse {
  status: number;
  body: string;
  /** The body parsed as JSON, or undefined. */
  json: unknown;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LoopbackCluster {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  readonly port: number;
  /** A token in group system:masters (cluster admin), from --token-auth-file. */
  readonly token: string;
  /** An admin kubeconfig (JSON, which kubectl and @kubernetes/client-node read as YAML). */
  readonly kubeconfigPath: string;
  /** The CA that signed the apiserver's serving certificate (PEM), and its file. */
  readonly caPem: string;
  readonly caPath: string;
  /** The temp dir holding everything (logs in `${dir}/logs`). */
  readonly dir: string;
  readonly logDir: string;
  readonly nodeNames: readonly string[];
  readonly binaries: ClusterBinaries;
  /** Milliseconds from startLoopbackCluster() to each milestone. */
  readonly timings: Readonly<Record<string, number>>;
  /** A raw API request as the admin (or as `token`), bounded by timeoutMs (default 10 s). */
  request(method: string, path: string, body?: unknown, options?: { token?: string; timeoutMs?: number; contentType?: string }): Promise<ApiResponse>;
  /** Creates a namespace named `${prefix}-<random>` and waits for its "default" ServiceAccount. */
  createNamespace(prefix?: string): Promise<string>;
  /** A token for a ServiceAccount (TokenRequest API), for tests that run as that identity. */
  createServiceAccountToken(namespace: string, serviceAccount: string, expirationSeconds?: number): Promise<string>;
  /** Writes a kubeconfig for another identity (a ServiceAccount token, say) and returns its path. */
  writeKubeconfig(options: { token: string; namespace?: string; user?: string; path?: string }): string;
  /** Runs the built kubectl against this cluster (admin kubeconfig unless `kubeconfig`), bounded. */
  kubectl(args: readonly string[], options?: { kubeconfig?: string; input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /**
   * Stops kube-apiserver (SIGTERM, a graceful shutdown that ends open watches; or SIGKILL, a crash)
   * and starts it again on the same port after `downMs`, then waits for /readyz (default bound 60 s).
   */
  restartApiserver(options?: RestartOptions): Promise<void>;
  /** Every process started so far (the current ones and those already stopped), with its process group. */
  processes(): readonly { name: string; pid: number }[];
  /** The last lines of a component's log. */
  logTail(component: ComponentName, lines?: number): string;
  /** Kills every process (SIGTERM to each group, SIGKILL after a bound) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface RestartOptions {
  /** Default SIGTERM. */
  signal?: "SIGTERM" | "SIGKILL";
  /** How long it stays down (default 0). */
  downMs?: number;
  /** Bound on the restart until /readyz answers ok (default 60 s). */
  timeoutMs?: number;
}

interface Proc {
  name: ComponentName;
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Set while stop()/restart kill it on purpose: its exit is then no failure. */
  stopping: boolean;
}

class StartupError extends Error {
  override name = "LoopbackClusterStartupError";
}

/**
 * Starts the cluster. Resolves once /readyz answers ok, the controller-manager and scheduler
 * answer /healthz, every fake node is Ready without taints, and namespace "default" has its
 * ServiceAccount. Rejects (after killing everything it started) with the failing component's
 * last log lines if any step fails or the bound passes.
 */
export async function startLoopbackCluster(options: LoopbackClusterOptions = {}): Promise<LoopbackCluster> {
  const binaries = options.binaries ?? clusterBinaries();
  const harness = new Harness(binaries, options);
  try {
    await harness.start();
  } catch (err) {
    await harness.stop();
    if (err instanceof StartupError && !harness.keep) err.message += `\n(logs removed with ${harness.dir}; CLIPPER_K8S_KEEP=1 keeps them)`;
    throw err;
  }
  return harness.api();
}

/** Processes whose command line mentions `text` (e.g. a cluster's temp dir): what stop() must leave none of. */
export function processesMentioning(text: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      if (cmdline.includes(text)) found.push({ pid: Number(entry), cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Whether a process (or, with a negative number, a process group) still exists. Zombies count. */
export function processExists(pidOrNegativePgid: number): boolean {
  try {
    process.kill(pidOrNegativePgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const WATCHDOG = `
# Kills the cluster's process groups if the test process dies without calling stop().
parent="$1"; groups="$2"; dir="$3"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
for g in $(cat "$groups" 2>/dev/null); do kill -KILL -- "-$g" 2>/dev/null; done
[ -f "$dir/.keep" ] || rm -rf "$dir"
`;

class Harness {
  private readonly t0 = Date.now();
  readonly timings: Record<string, number> = {};
  readonly dir: string;
  readonly logDir: string;
  private readonly procs = new Map<ComponentName, Proc>();
  private readonly started: { name: string; pid: number }[] = [];
  private watchdog: ChildProcess | undefined;
  readonly keep: boolean;
  private readonly log: (line: string) => void;
  private stopped: Promise<void> | undefined;
  private agent: Agent | undefined;
  private readonly exitHandler = () => this.killAllNow();

  readonly token = randomBytes(24).toString("hex");
  private readonly controllerManagerToken = randomBytes(24).toString("hex");
  private readonly schedulerToken = randomBytes(24).toString("hex");
  private readonly kwokToken = randomBytes(24).toString("hex");
  readonly nodeNames: string[];
  private ports = { etcdClient: 0, etcdPeer: 0, apiserver: 0, controllerManager: 0, scheduler: 0 };
  caPem = "";

  constructor(
    readonly binaries: ClusterBinaries,
    private readonly options: LoopbackClusterOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), "clipper-k8s-"));
    this.logDir = join(this.dir, "logs");
    mkdirSync(this.logDir);
    this.keep = options.keepTempDir === true || process.env.CLIPPER_K8S_KEEP === "1";
    if (this.keep) writeFileSync(join(this.dir, ".keep"), "");
    this.log = options.log ?? (() => {});
    const prefix = options.nodeNamePrefix ?? "kwok-node-";
    this.nodeNames = Array.from({ length: options.nodes ?? 1 }, (_, i) => `${prefix}${i}`);
    process.on("exit", this.exitHandler);
  }

  get server(): string {
    return `https://127.0.0.1:${this.ports.apiserver}`;
  }

  private file(name: string): string {
    return join(this.dir, name);
  }

  private mark(name: string): void {
    this.timings[name] = Date.now() - this.t0;
    this.log(`loopback cluster: ${name} after ${this.timings[name]} ms`);
  }

  private deadline(): number {
    return this.t0 + (this.options.startTimeoutMs ?? 120_000);
  }

  async start(): Promise<void> {
    const [etcdClient = 0, etcdPeer = 0, apiserver = 0, controllerManager = 0, scheduler = 0] = await freeLoopbackPorts(5);
    this.ports = { etcdClient, etcdPeer, apiserver, controllerManager, scheduler };
    this.startWatchdog();
    await this.writeCredentials();
    this.mark("credentials");

    this.spawn("etcd", this.etcdArgs());
    await this.waitFor("etcd", "etcd /health", 30_000, async () => {
      const res = await plainGet(`http://127.0.0.1:${this.ports.etcdClient}/health`, 2_000);
      return res.status === 200 && res.body.includes('"true"');
    });
    this.mark("etcd ready");

    this.spawn("kube-apiserver", this.apiserverArgs());
    await this.waitForApiserver(60_000);
    this.mark("apiserver ready");

    this.spawn("kube-controller-manager", this.controllerManagerArgs());
    this.spawn("kube-scheduler", this.schedulerArgs());
    this.spawn("kwok", this.kwokArgs());
    await this.createNodes();

    await Promise.all([
      this.waitFor("kube-controller-manager", "kube-controller-manager /healthz", 60_000, () => this.healthz(this.ports.controllerManager)).then(() =>
        this.mark("controller-manager healthy"),
      ),
      this.waitFor("kube-scheduler", "kube-scheduler /healthz", 60_000, () => this.healthz(this.ports.scheduler)).then(() => this.mark("scheduler healthy")),
      this.waitFor("kwok", `nodes ${this.nodeNames.join(", ")} Ready and untainted`, 60_000, () => this.nodesReady()).then(() => this.mark("nodes ready")),
      this.waitFor("kube-controller-manager", 'ServiceAccount "default" in namespace "default"', 60_000, async () => {
        const res = await this.request("GET", "/api/v1/namespaces/default/serviceaccounts/default");
        return res.status === 200;
      }),
    ]);
    this.mark("ready");
  }

  // --- credentials and configuration files

  private async writeCredentials(): Promise<void> {
    const ext = [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1",
    ];
    writeFileSync(this.file("apiserver-ext.cnf"), `${ext.join("\n")}\n`);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await run("openssl", [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      this.file("ca.key"),
      "-out",
      this.file("ca.crt"),
      "-days",
      "30",
      "-subj",
      "/CN=clipper-loopback-ca",
    ]);
    await run("openssl", ["req", ...ec, "-keyout", this.file("apiserver.key"), "-out", this.file("apiserver.csr"), "-subj", "/CN=kube-apiserver"]);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      this.file("apiserver.csr"),
      "-CA",
      this.file("ca.crt"),
      "-CAkey",
      this.file("ca.key"),
      "-CAcreateserial",
      "-days",
      "30",
      "-extfile",
      this.file("apiserver-ext.cnf"),
      "-out",
      this.file("apiserver.crt"),
    ]);
    this.caPem = readFileSync(this.file("ca.crt"), "utf8");
    this.agent = new Agent({ ca: this.caPem, keepAlive: true, maxSockets: 16 });

    // The service-account token signing pair.
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync(this.file("sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    writeFileSync(this.file("sa.pub"), publicKey.export({ type: "spki", format: "pem" }));

    // token,user,uid,"group1,group2"
    writeFileSync(
      this.file("tokens.csv"),
      [
        `${this.token},clipper-test-admin,clipper-test-admin,"system:masters"`,
        `${this.controllerManagerToken},system:kube-controller-manager,system:kube-controller-manager`,
        `${this.schedulerToken},system:kube-scheduler,system:kube-scheduler`,
        `${this.kwokToken},kwok,kwok,"system:masters"`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    this.writeKubeconfig({ token: this.token, user: "admin", path: this.file("admin.kubeconfig") });
    this.writeKubeconfig({ token: this.controllerManagerToken, user: "kube-controller-manager", path: this.file("controller-manager.kubeconfig") });
    this.writeKubeconfig({ token: this.schedulerToken, user: "kube-scheduler", path: this.file("scheduler.kubeconfig") });
    this.writeKubeconfig({ token: this.kwokToken, user: "kwok", path: this.file("kwok.kubeconfig") });
  }

  writeKubeconfig(options: { token: string; namespace?: string; user?: string; path?: string }): string {
    const user = options.user ?? "user";
    const path = options.path ?? this.file(`${user}-${randomBytes(4).toString("hex")}.kubeconfig`);
    const config = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "loopback", cluster: { server: this.server, "certificate-authority-data": Buffer.from(this.caPem).toString("base64") } }],
      users: [{ name: user, user: { token: options.token } }],
      contexts: [{ name: "loopback", context: { cluster: "loopback", user, ...(options.namespace ? { namespace: options.namespace } : {}) } }],
      "current-context": "loopback",
    };
    writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    return path;
  }

  private etcdArgs(): string[] {
    const { etcdClient, etcdPeer } = this.ports;
    return [
      "--name=loopback",
      `--data-dir=${this.file("etcd-data")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=loopback=http://127.0.0.1:${etcdPeer}`,
      "--initial-cluster-state=new",
      "--unsafe-no-fsync=true", // a test cluster: losing it on a crash is fine, fsync latency is not
      "--log-level=warn",
      ...(this.options.extraArgs?.etcd ?? []),
    ];
  }

  private apiserverArgs(): string[] {
    return [
      `--etcd-servers=http://127.0.0.1:${this.ports.etcdClient}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${this.ports.apiserver}`,
      // The endpoint reconciler refuses a loopback "public IP" and the apiserver exits.
      "--endpoint-reconciler-type=none",
      `--cert-dir=${this.file("apiserver-certs")}`,
      `--tls-cert-file=${this.file("apiserver.crt")}`,
      `--tls-private-key-file=${this.file("apiserver.key")}`,
      `--token-auth-file=${this.file("tokens.csv")}`,
      "--authorization-mode=Node,RBAC",
      `--service-account-key-file=${this.file("sa.pub")}`,
      `--service-account-signing-key-file=${this.file("sa.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      "--allow-privileged=true",
      "--profiling=false",
      // Without it a SIGTERM'd apiserver with open watches (kwok's, the controllers', the tests') stops
      // listening at once but lingers for more than 15 s before exiting; with it, about 1 s.
      "--shutdown-watch-termination-grace-period=2s",
      ...(this.options.extraArgs?.["kube-apiserver"] ?? []),
    ];
  }

  private controllerManagerArgs(): string[] {
    const kubeconfig = this.file("controller-manager.kubeconfig");
    return [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${this.ports.controllerManager}`,
      `--cert-dir=${this.file("controller-manager-certs")}`,
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${this.file("sa.key")}`,
      `--root-ca-file=${this.file("ca.crt")}`,
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      "--kube-api-qps=100",
      "--kube-api-burst=200",
      "--profiling=false",
      ...(this.options.extraArgs?.["kube-controller-manager"] ?? []),
    ];
  }

  private schedulerArgs(): string[] {
    const kubeconfig = this.file("scheduler.kubeconfig");
    return [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${this.ports.scheduler}`,
      `--cert-dir=${this.file("scheduler-certs")}`,
      "--profiling=false",
      ...(this.options.extraArgs?.["kube-scheduler"] ?? []),
    ];
  }

  private kwokArgs(): string[] {
    return [
      `--kubeconfig=${this.file("kwok.kubeconfig")}`,
      `--config=${this.binaries.kwokStages}`,
      `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
      "--node-lease-duration-seconds=40",
      `--cidr=${KWOK_POD_CIDR}`,
      "--node-ip=127.0.0.1",
      ...(this.options.extraArgs?.kwok ?? []),
    ];
  }

  private async createNodes(): Promise<void> {
    const capacity = this.options.nodeCapacity ?? { cpu: "16", memory: "64Gi", pods: "500" };
    for (const name of this.nodeNames) {
      const node = {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name,
          annotations: { [KWOK_NODE_ANNOTATION]: "fake", "node.alpha.kubernetes.io/ttl": "0" },
          labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", type: "kwok" },
        },
        spec: {},
        status: {
          allocatable: capacity,
          capacity,
          // A loopback InternalIP: anything that dials the "kubelet" reaches nothing here, and nothing private.
          addresses: [
            { type: "InternalIP", address: "127.0.0.1" },
            { type: "Hostname", address: name },
          ],
        },
      };
      const res = await this.request("POST", "/api/v1/nodes", node);
      if (res.status !== 201) throw new StartupError(`creating node ${name}: HTTP ${res.status} ${res.body.slice(0, 500)}`);
    }
    this.mark("nodes created");
  }

  private async nodesReady(): Promise<boolean> {
    const res = await this.request("GET", "/api/v1/nodes");
    if (res.status !== 200) return false;
    const items = (res.json as { items?: NodeLike[] }).items ?? [];
    return this.nodeNames.every((name) => {
      const node = items.find((n) => n.metadata?.name === name);
      const ready = node?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
      return ready && (node?.spec?.taints ?? []).length === 0;
    });
  }

  private async healthz(port: number): Promise<boolean> {
    // The controller-manager's and scheduler's own self-signed serving certs: loopback, not verified.
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest({ host: "127.0.0.1", port, path: "/healthz", rejectUnauthorized: false, agent: false, timeout: 2_000 }, (r) => {
        let body = "";
        r.setEncoding("utf8");
        r.on("data", (c: string) => {
          body += c;
        });
        r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end();
    });
    return res.status === 200 && res.body.trim() === "ok";
  }

  private async waitForApiserver(timeoutMs: number): Promise<void> {
    await this.waitFor("kube-apiserver", "kube-apiserver /readyz", timeoutMs, async () => {
      const res = await this.request("GET", "/readyz", undefined, { timeoutMs: 3_000 });
      return res.status === 200 && res.body.trim() === "ok";
    });
  }

  /** Polls `check` until it is true; fails when the component exits, or with its log tail when the bound passes. */
  private async waitFor(component: ComponentName, what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
    const bound = Math.min(timeoutMs, this.deadline() - Date.now());
    const until = Date.now() + bound;
    let lastError = "";
    for (;;) {
      const proc = this.procs.get(component);
      if (proc?.exit && !proc.stopping) {
        throw new StartupError(
          `${component} exited (code ${proc.exit.code}, signal ${proc.exit.signal}) while waiting for ${what}. Last lines of ${this.logPath(component)}:\n${this.logTail(component, 40)}`,
        );
      }
      try {
        if (await check()) return;
        lastError = "";
      } catch (err) {
        lastError = ` (last error: ${(err as Error).message})`;
      }
      if (Date.now() >= until) {
        throw new StartupError(
          `timed out after ${bound} ms waiting for ${what}${lastError} (start bound ${this.options.startTimeoutMs ?? 120_000} ms). Last lines of ${this.logPath(component)}:\n${this.logTail(component, 40)}`,
        );
      }
      await sleep(150);
    }
  }

  // --- processes

  private logPath(component: ComponentName): string {
    return join(this.logDir, `${component}.log`);
  }

  logTail(component: ComponentName, lines = 30): string {
    try {
      const text = readFileSync(this.logPath(component), "utf8");
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  private spawn(name: ComponentName, args: string[]): Proc {
    const bin = {
      etcd: this.binaries.etcd,
      "kube-apiserver": this.binaries.kubeApiserver,
      "kube-controller-manager": this.binaries.kubeControllerManager,
      "kube-scheduler": this.binaries.kubeScheduler,
      kwok: this.binaries.kwok,
    }[name];
    const fd = openSync(this.logPath(name), "a");
    writeFileSync(fd, `==== ${new Date().toISOString()} ${bin} ${args.join(" ")}\n`);
    let child: ChildProcess;
    try {
      // detached: a process group of its own, so stop() can kill it and anything it starts.
      child = spawn(bin, args, { detached: true, stdio: ["ignore", fd, fd], cwd: this.dir, env: { ...process.env, HOME: this.dir } });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) throw new StartupError(`could not start ${bin}`);
    const proc: Proc = { name, child, pid: child.pid, exit: undefined, stopping: false, exited: Promise.resolve() };
    proc.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        proc.exit = { code, signal };
        resolve();
      });
      child.once("error", () => {
        proc.exit ??= { code: -1, signal: null };
        resolve();
      });
    });
    this.procs.set(name, proc);
    this.started.push({ name, pid: child.pid });
    this.writeGroups();
    return proc;
  }

  private writeGroups(): void {
    const groups = [...this.procs.values()].filter((p) => !p.exit).map((p) => p.pid);
    writeFileSync(this.file(".groups"), `${groups.join("\n")}\n`);
  }

  private startWatchdog(): void {
    this.watchdog = spawn("bash", ["-c", WATCHDOG, "watchdog", String(process.pid), this.file(".groups"), this.dir], {
      detached: true,
      stdio: "ignore",
    });
    this.watchdog.unref();
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the leader has exited and been reaped. */
  private async kill(proc: Proc, graceMs: number, signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    proc.stopping = true;
    signalGroup(proc.pid, signal);
    const graceful = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
    // Whatever else is in the group goes too (SIGKILL is harmless once it is empty).
    signalGroup(proc.pid, "SIGKILL");
    if (!graceful) await Promise.race([proc.exited, sleep(5_000)]);
    this.writeGroups();
  }

  private killAllNow(): void {
    for (const proc of this.procs.values()) signalGroup(proc.pid, "SIGKILL");
    if (this.watchdog?.pid) signalGroup(this.watchdog.pid, "SIGKILL");
    if (!this.keep) rmSync(this.dir, { recursive: true, force: true });
  }

  async restartApiserver(options: RestartOptions = {}): Promise<void> {
    const proc = this.procs.get("kube-apiserver");
    if (!proc || proc.exit) throw new Error("kube-apiserver is not running");
    await this.kill(proc, 10_000, options.signal ?? "SIGTERM");
    if (options.downMs) await sleep(options.downMs);
    this.agent?.destroy();
    this.agent = new Agent({ ca: this.caPem, keepAlive: true, maxSockets: 16 });
    this.spawn("kube-apiserver", this.apiserverArgs());
    const timeoutMs = options.timeoutMs ?? 60_000;
    const until = Date.now() + timeoutMs;
    // The start deadline does not apply to a restart.
    let lastError = "";
    for (;;) {
      const current = this.procs.get("kube-apiserver");
      if (current?.exit) throw new Error(`kube-apiserver exited after restart:\n${this.logTail("kube-apiserver", 40)}`);
      try {
        const res = await this.request("GET", "/readyz", undefined, { timeoutMs: 3_000 });
        if (res.status === 200 && res.body.trim() === "ok") return;
        lastError = `HTTP ${res.status}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      if (Date.now() >= until) {
        throw new Error(`kube-apiserver not ready ${timeoutMs} ms after restart (${lastError}):\n${this.logTail("kube-apiserver", 40)}`);
      }
      await sleep(150);
    }
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.watchdog?.pid) signalGroup(this.watchdog.pid, "SIGKILL");
      const get = (n: ComponentName) => this.procs.get(n);
      const byOrder = (names: ComponentName[]) => names.map(get).filter((p): p is Proc => p !== undefined);
      // Clients first, then the apiserver, then its storage.
      await Promise.all(byOrder(["kwok", "kube-scheduler", "kube-controller-manager"]).map((p) => this.kill(p, 5_000)));
      await Promise.all(byOrder(["kube-apiserver"]).map((p) => this.kill(p, 10_000)));
      await Promise.all(byOrder(["etcd"]).map((p) => this.kill(p, 5_000)));
      this.agent?.destroy();
      process.off("exit", this.exitHandler);
      if (this.keep) this.log(`loopback cluster: kept ${this.dir}`);
      else rmSync(this.dir, { recursive: true, force: true });
    })();
    return this.stopped;
  }

  request(method: string, path: string, body?: unknown, options: { token?: string; timeoutMs?: number; contentType?: string } = {}): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    return new Promise<ApiResponse>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: this.ports.apiserver,
          method,
          path,
          agent: this.agent,
          ca: this.caPem,
          timeout: options.timeoutMs ?? 10_000,
          headers: {
            authorization: `Bearer ${options.token ?? this.token}`,
            accept: "application/json",
            ...(payload !== undefined ? { "content-type": options.contentType ?? "application/json", "content-length": Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            text += c;
          });
          res.on("end", () => {
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: text, json });
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer in ${options.timeoutMs ?? 10_000} ms`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  async createNamespace(prefix = "test"): Promise<string> {
    const name = `${prefix}-${randomBytes(3).toString("hex")}`;
    const res = await this.request("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } });
    if (res.status !== 201) throw new Error(`creating namespace ${name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    // Pods are refused until the controller-manager has made the namespace's "default" ServiceAccount.
    const until = Date.now() + 30_000;
    while ((await this.request("GET", `/api/v1/namespaces/${name}/serviceaccounts/default`)).status !== 200) {
      if (Date.now() > until) throw new Error(`namespace ${name}: no "default" ServiceAccount after 30 s:\n${this.logTail("kube-controller-manager")}`);
      await sleep(100);
    }
    return name;
  }

  async createServiceAccountToken(namespace: string, serviceAccount: string, expirationSeconds = 3600): Promise<string> {
    const res = await this.request("POST", `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds },
    });
    const token = (res.json as { status?: { token?: string } } | undefined)?.status?.token;
    if (res.status !== 201 || !token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    return token;
  }

  kubectl(args: readonly string[], options: { kubeconfig?: string; input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
    return new Promise((resolve) => {
      const child = execFile(
        this.binaries.kubectl,
        [...args],
        {
          timeout: options.timeoutMs ?? 60_000,
          killSignal: "SIGKILL",
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, KUBECONFIG: options.kubeconfig ?? this.file("admin.kubeconfig"), HOME: this.dir },
        },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
          resolve({ code, stdout, stderr: err && code === -1 ? `${stderr}${err.message}` : stderr });
        },
      );
      if (child.pid !== undefined) this.started.push({ name: "kubectl", pid: child.pid });
      child.stdin?.end(options.input ?? "");
    });
  }

  api(): LoopbackCluster {
    return {
      server: this.server,
      port: this.ports.apiserver,
      token: this.token,
      kubeconfigPath: this.file("admin.kubeconfig"),
      caPem: this.caPem,
      caPath: this.file("ca.crt"),
      dir: this.dir,
      logDir: this.logDir,
      nodeNames: this.nodeNames,
      binaries: this.binaries,
      timings: this.timings,
      request: (method, path, body, options) => this.request(method, path, body, options),
      createNamespace: (prefix) => this.createNamespace(prefix),
      createServiceAccountToken: (ns, sa, seconds) => this.createServiceAccountToken(ns, sa, seconds),
      writeKubeconfig: (options) => this.writeKubeconfig(options),
      kubectl: (args, options) => this.kubectl(args, options),
      restartApiserver: (options) => this.restartApiserver(options),
      processes: () => [...this.started],
      logTail: (component, lines) => this.logTail(component, lines),
      stop: () => this.stop(),
    };
  }
}

interface NodeLike {
  metadata?: { name?: string };
  spec?: { taints?: unknown[] };
  status?: { conditions?: { type: string; status: string }[] };
}

/** A signal to every process of a process group (nothing if it is empty). */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is empty already
  }
}

/** Free TCP ports on 127.0.0.1, all held open until each is chosen so none repeats. */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      if (err) reject(new StartupError(`${cmd} ${args.slice(0, 2).join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function plainGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}
