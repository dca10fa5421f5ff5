/**
 * The Kubernetes backend at scale (issue 11): V model versions x R replicas on kwok nodes of a loopback cluster, for
 * V x R in {1x1, 10x10, --versions x --replicas (default 100x10)}. Not a timed test: a benchmark, run by hand.
 *
 *   node --import tsx bench/kubernetes-scale.ts [--versions 100] [--replicas 10] [--kills 5] [--concurrency 10]
 *
 * One cluster for every scenario (kwok nodes with the kubelet's default limit of 110 pods each, enough of them for the
 * largest scenario and its replacements), and per scenario a namespace of its own where the container-manager runs as
 * a process (`--backend kubernetes`) under the Role deploy/kubernetes grants its ServiceAccount, with the real registry.
 * Measured per scenario:
 *  - reconcile: from the first DeployModel (every version at once, at most --concurrency in flight, as an operator's
 *    script would) until the registry lists every replica READY;
 *  - a killed pod (deleted as admin, --kills times in a row): until the registry lists its replacement READY, and until
 *    it no longer lists the deleted one;
 *  - the container-manager's CPU (utime+stime from /proc) and RSS (VmRSS, VmHWM) per phase, and an idle phase;
 *  - the apiserver requests its ServiceAccount made, per phase, verb and resource, from the apiserver's audit log
 *    (Metadata level for the scenario namespaces' ServiceAccounts only), and the watches open at the end.
 * Everything is on 127.0.0.1 and bounded: every wait has a deadline, the cluster and services are stopped at the end.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { ReplicaState } from "../gen/clipper/v1/resources_pb.js";
import { ClusterBinariesMissing, type LoopbackCluster, startLoopbackCluster } from "../services/container-manager/testing/loopback-cluster.js";
import { kubernetesBackendArgs } from "../test/kubernetes/container-manager-role.js";
import { repoRoot, TestSystem } from "../test/system.js";

/** Stops what is running now (the scenario's services, the cluster), for a signal. */
const running = new Set<() => Promise<void>>();

const RBAC_MANIFEST = join(repoRoot, "deploy", "kubernetes", "base", "container-manager-rbac.yaml");
const SERVICE_ACCOUNT = "clipper-container-manager";
/** The kubelet's default --max-pods: a fake node takes no more than a real one would. */
const PODS_PER_NODE = 110;
const CLOCK_TICKS_PER_SECOND = 100;

const USAGE = "usage: node --import tsx bench/kubernetes-scale.ts [--versions 100] [--replicas 10] [--kills 5] [--concurrency 10] [--idle-seconds 10]";

/** Bad flags end the run with the reason and the usage, not a stack. */
function usageError(reason: string): never {
  console.error(`${reason}\n${USAGE}`);
  process.exit(2);
}

function parseFlags() {
  try {
    return parseArgs({
      options: {
        versions: { type: "string", default: "100" },
        replicas: { type: "string", default: "10" },
        kills: { type: "string", default: "5" },
        concurrency: { type: "string", default: "10" },
        "idle-seconds": { type: "string", default: "10" },
        "reconcile-timeout-seconds": { type: "string", default: "300" },
        out: { type: "string", default: join(repoRoot, "bench", "out", "kubernetes-scale.json") },
      },
    }).values;
  } catch (err) {
    // An unknown flag or one without its value.
    return usageError(err instanceof Error ? err.message : String(err));
  }
}

const flags = parseFlags();

function positiveInt(name: string, raw: string | undefined, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) usageError(`--${name} must be an integer from 1 to ${max}, not "${raw}"`);
  return n;
}

const options = {
  versions: positiveInt("versions", flags.versions, 200),
  replicas: positiveInt("replicas", flags.replicas, 20),
  kills: positiveInt("kills", flags.kills, 20),
  concurrency: positiveInt("concurrency", flags.concurrency, 50),
  idleMs: positiveInt("idle-seconds", flags["idle-seconds"], 120) * 1000,
  reconcileTimeoutMs: positiveInt("reconcile-timeout-seconds", flags["reconcile-timeout-seconds"], 900) * 1000,
  out: flags.out ?? "",
};

interface Scenario {
  versions: number;
  replicas: number;
  namespace: string;
}

const sizes: [number, number][] = [
  [1, 1],
  [10, 10],
  [options.versions, options.replicas],
];
/** 1x1, 10x10 and the largest, each once, none larger than the largest. */
const scenarios: Scenario[] = sizes
  .filter(([v, r], i) => sizes.findIndex(([v2, r2]) => v2 === v && r2 === r) === i && v * r <= options.versions * options.replicas)
  .map(([versions, replicas]) => ({ versions, replicas, namespace: `bench-${versions}x${replicas}` }));

// -------------------------------------------------------------------------------------------------
// Measuring a process

interface ProcessSample {
  atMs: number;
  cpuMs: number;
  rssBytes: number;
  peakRssBytes: number;
}

function sampleProcess(pid: number): ProcessSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command (which may hold spaces) start after the last ')'; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { atMs: Date.now(), cpuMs: (ticks * 1000) / CLOCK_TICKS_PER_SECOND, rssBytes: kb("VmRSS"), peakRssBytes: kb("VmHWM") };
}

// -------------------------------------------------------------------------------------------------
// The apiserver's audit log

interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string };
  requestReceivedTimestamp: string;
  responseStatus?: { code?: number };
}

function auditEventsOf(auditLog: string, username: string): AuditEvent[] {
  return readFileSync(auditLog, "utf8")
    .split("\n")
    .filter((line) => line.includes(username))
    .map((line) => JSON.parse(line) as AuditEvent)
    .filter((e) => e.user?.username === username);
}

interface RequestCounts {
  total: number;
  /** "verb resource[/subresource]" -> count */
  byKind: Record<string, number>;
  /** Requests with a status >= 400 (a 409 on create is expected once per adopted version, anything else is not). */
  errors: number;
}

/** The requests received in [fromMs, toMs), each counted once (its ResponseComplete, or ResponseStarted for a watch still open). */
function countRequests(events: AuditEvent[], fromMs: number, toMs: number): RequestCounts {
  const byId = new Map<string, AuditEvent>();
  for (const e of events) {
    const at = Date.parse(e.requestReceivedTimestamp);
    if (at < fromMs || at >= toMs) continue;
    if (!byId.has(e.auditID) || e.stage === "ResponseComplete") byId.set(e.auditID, e);
  }
  const counts: RequestCounts = { total: 0, byKind: {}, errors: 0 };
  for (const e of byId.values()) {
    const kind = `${e.verb} ${e.objectRef?.resource ?? "?"}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`;
    counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;
    counts.total++;
    if ((e.responseStatus?.code ?? 0) >= 400 && e.verb !== "watch") counts.errors++;
  }
  return counts;
}

/** Watches started (ResponseStarted) and not ended (no ResponseComplete) by the end of the log. */
function openWatches(events: AuditEvent[]): number {
  const started = new Set(events.filter((e) => e.verb === "watch" && e.stage === "ResponseStarted").map((e) => e.auditID));
  for (const e of events) if (e.stage === "ResponseComplete") started.delete(e.auditID);
  return started.size;
}

// -------------------------------------------------------------------------------------------------
// A scenario

interface KillResult {
  pod: string;
  replacementReadyMs: number;
  removedMs: number;
}

interface PhaseCost {
  wallMs: number;
  cpuMs: number;
  requests: RequestCounts;
}

interface ScenarioResult {
  versions: number;
  replicas: number;
  pods: number;
  /** First DeployModel until every DeployModel call returned. */
  deployCallsMs: number;
  /** First DeployModel until the registry lists every replica READY. */
  reconcileMs: number;
  startup: PhaseCost;
  reconcile: PhaseCost;
  idle: PhaseCost;
  kills: KillResult[];
  kill: PhaseCost;
  rssAfterStartBytes: number;
  rssAfterReconcileBytes: number;
  peakRssBytes: number;
  apiserverCpuMsReconcile: number;
  openWatchesAtEnd: number;
  loadAverageDuring: number[];
}

function model(i: number, replicas: number) {
  return {
    name: `scale-${String(i).padStart(3, "0")}`,
    version: "1",
    inputType: InputType.DOUBLES,
    desiredReplicas: replicas,
    // kwok's pods run nothing: the image and command are never started.
    runtime: { kind: { case: "command" as const, value: { argv: ["/bin/model-server"] } } },
  };
}

async function boundedAll<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

async function until<T>(what: string, deadlineMs: number, everyMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function createNamespace(cluster: LoopbackCluster, name: string): Promise<void> {
  const res = await cluster.request("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } });
  if (res.status !== 201) throw new Error(`creating namespace ${name}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  await until(`namespace ${name}'s default ServiceAccount`, Date.now() + 60_000, 100, async () =>
    (await cluster.request("GET", `/api/v1/namespaces/${name}/serviceaccounts/default`)).status === 200 ? true : undefined,
  );
  const applied = await cluster.kubectl(["apply", "-n", name, "-f", RBAC_MANIFEST]);
  if (applied.code !== 0) throw new Error(`kubectl apply of ${RBAC_MANIFEST} failed: ${applied.stderr}`);
}

async function runScenario(cluster: LoopbackCluster, core: CoreV1Api, auditLog: string, s: Scenario): Promise<ScenarioResult> {
  const pods = s.versions * s.replicas;
  const log = (line: string) => console.log(`[${s.versions}x${s.replicas} ${new Date().toISOString().slice(11, 19)}] ${line}`);
  await createNamespace(cluster, s.namespace);
  const token = await cluster.createServiceAccountToken(s.namespace, SERVICE_ACCOUNT);
  const kubeconfig = cluster.writeKubeconfig({ token, namespace: s.namespace, path: join(cluster.dir, `${s.namespace}.kubeconfig`) });
  const username = `system:serviceaccount:${s.namespace}:${SERVICE_ACCOUNT}`;
  const system = new TestSystem({
    args: {
      "container-manager": [
        ...kubernetesBackendArgs({ kubeconfig, clusterName: `b${s.versions}x${s.replicas}`, image: "registry.invalid/clipper/runtime:bench" }),
      ],
    },
  });
  const stopSystem = () => system.stop();
  running.add(stopSystem);
  const apiserverPid = cluster.processes().findLast((p) => p.name === "kube-apiserver")?.pid;
  const loads: number[] = [];
  try {
    await system.startService("registry");
    const tStart = Date.now();
    await system.startService("container-manager");
    const pid = system.pid("container-manager");
    if (pid === undefined) throw new Error("the container-manager has no pid");
    await sleep(2000);
    const afterStart = sampleProcess(pid);
    const management = system.management();
    const readyCount = async () => {
      const res = await management.listReplicas({});
      return res.replicaSets.reduce((n, set) => n + set.replicas.filter((r) => r.state === ReplicaState.READY).length, 0);
    };

    // Reconcile from nothing.
    log(`deploying ${s.versions} versions x ${s.replicas} replicas, ${options.concurrency} DeployModel calls at a time`);
    const apiserverBefore = apiserverPid !== undefined ? sampleProcess(apiserverPid) : undefined;
    const t0 = Date.now();
    let callsDoneAt = 0;
    const calls = boundedAll(
      Array.from({ length: s.versions }, (_, i) => i),
      options.concurrency,
      (i) => system.deploy(model(i, s.replicas), options.reconcileTimeoutMs / 1000),
    ).then(() => {
      callsDoneAt = Date.now();
    });
    const callsFailed = calls.then(
      () => new Promise<never>(() => {}),
      (err: unknown) => Promise.reject(err),
    );
    let lastLogged = 0;
    await Promise.race([
      callsFailed,
      until(`${pods} replicas READY in the registry`, t0 + options.reconcileTimeoutMs, 250, async () => {
        const ready = await readyCount();
        if (Date.now() - lastLogged > 10_000) {
          lastLogged = Date.now();
          log(`${ready}/${pods} READY after ${Math.round((Date.now() - t0) / 1000)} s`);
        }
        return ready === pods ? true : undefined;
      }),
    ]);
    const tReady = Date.now();
    loads.push(loadavg()[0] ?? 0);
    await calls;
    const afterReconcile = sampleProcess(pid);
    const apiserverAfter = apiserverPid !== undefined ? sampleProcess(apiserverPid) : undefined;
    log(`all ${pods} READY in ${tReady - t0} ms (DeployModel calls returned after ${callsDoneAt - t0} ms)`);

    // Idle: what a steady system costs.
    const tIdle = Date.now();
    await sleep(options.idleMs);
    const afterIdle = sampleProcess(pid);

    // Killed pods, one at a time.
    const tKill = Date.now();
    const kills: KillResult[] = [];
    for (let k = 0; k < options.kills; k++) {
      const modelName = model(k % s.versions, s.replicas).name;
      const replicasOf = async () => (await management.listReplicas({ modelName, modelVersion: "1" })).replicaSets[0]?.replicas ?? [];
      const before = await replicasOf();
      const victim = before.find((r) => r.state === ReplicaState.READY);
      if (victim === undefined) throw new Error(`${modelName} has no READY replica to kill`);
      const known = new Set(before.map((r) => r.id));
      const deletedAt = Date.now();
      await core.deleteNamespacedPod({ name: victim.id, namespace: s.namespace });
      let replacementReadyMs = 0;
      let removedMs = 0;
      await until(`${victim.id}'s replacement READY and ${victim.id} removed`, deletedAt + 60_000, 25, async () => {
        const now = await replicasOf();
        const at = Date.now() - deletedAt;
        const ready = now.filter((r) => r.state === ReplicaState.READY);
        if (replacementReadyMs === 0 && ready.length === s.replicas && ready.some((r) => !known.has(r.id))) replacementReadyMs = at;
        if (removedMs === 0 && !now.some((r) => r.id === victim.id)) removedMs = at;
        return replacementReadyMs > 0 && removedMs > 0 ? true : undefined;
      });
      kills.push({ pod: victim.id, replacementReadyMs, removedMs });
      log(`killed ${victim.id}: replacement READY after ${replacementReadyMs} ms, removed after ${removedMs} ms`);
    }
    const tEnd = Date.now();
    const afterKill = sampleProcess(pid);
    loads.push(loadavg()[0] ?? 0);

    const events = auditEventsOf(auditLog, username);
    const phase = (from: number, to: number, a: ProcessSample, b: ProcessSample): PhaseCost => ({
      wallMs: to - from,
      cpuMs: b.cpuMs - a.cpuMs,
      requests: countRequests(events, from, to),
    });
    const startSample = { ...afterStart, cpuMs: 0 };
    return {
      versions: s.versions,
      replicas: s.replicas,
      pods,
      deployCallsMs: callsDoneAt - t0,
      reconcileMs: tReady - t0,
      startup: phase(tStart, t0, startSample, afterStart),
      reconcile: phase(t0, tReady, afterStart, afterReconcile),
      idle: phase(tIdle, tKill, afterReconcile, afterIdle),
      kills,
      kill: phase(tKill, tEnd, afterIdle, afterKill),
      rssAfterStartBytes: afterStart.rssBytes,
      rssAfterReconcileBytes: afterReconcile.rssBytes,
      peakRssBytes: afterKill.peakRssBytes,
      apiserverCpuMsReconcile: apiserverBefore && apiserverAfter ? apiserverAfter.cpuMs - apiserverBefore.cpuMs : Number.NaN,
      openWatchesAtEnd: openWatches(events),
      loadAverageDuring: loads,
    };
  } finally {
    // SIGTERM: the container-manager releases its watches and leaves the Deployments; the namespace goes with them.
    running.delete(stopSystem);
    await system.stop();
    await cluster.request("DELETE", `/api/v1/namespaces/${s.namespace}`).catch(() => undefined);
  }
}

// -------------------------------------------------------------------------------------------------
// The report

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : (sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN);
};
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const s1 = (ms: number) => (ms / 1000).toFixed(1);

function table(results: ScenarioResult[]): string {
  const rows: [string, (r: ScenarioResult) => string][] = [
    ["pods", (r) => String(r.pods)],
    ["reconcile: first DeployModel to all READY in the registry (s)", (r) => s1(r.reconcileMs)],
    ["reconcile: every DeployModel call returned (s)", (r) => s1(r.deployCallsMs)],
    ["reconcile: container-manager CPU (s)", (r) => s1(r.reconcile.cpuMs)],
    ["reconcile: container-manager CPU per pod (ms)", (r) => (r.reconcile.cpuMs / r.pods).toFixed(1)],
    ["reconcile: kube-apiserver CPU (s)", (r) => s1(r.apiserverCpuMsReconcile)],
    ["reconcile: apiserver requests (all verbs)", (r) => String(r.reconcile.requests.total)],
    ["reconcile: requests by verb", (r) => kinds(r.reconcile.requests)],
    ["reconcile: requests refused (>= 400)", (r) => String(r.reconcile.requests.errors)],
    [
      "killed pod: replacement READY, median (max) (ms)",
      (r) => `${median(r.kills.map((k) => k.replacementReadyMs))} (${Math.max(...r.kills.map((k) => k.replacementReadyMs))})`,
    ],
    [
      "killed pod: deleted one removed, median (max) (ms)",
      (r) => `${median(r.kills.map((k) => k.removedMs))} (${Math.max(...r.kills.map((k) => k.removedMs))})`,
    ],
    ["killed pods: container-manager CPU per kill (ms)", (r) => (r.kill.cpuMs / r.kills.length).toFixed(0)],
    ["killed pods: requests per kill", (r) => (r.kill.requests.total / r.kills.length).toFixed(1)],
    ["killed pods: requests by verb", (r) => kinds(r.kill.requests) || "none"],
    [`idle ${options.idleMs / 1000} s: container-manager CPU (ms)`, (r) => r.idle.cpuMs.toFixed(0)],
    [`idle ${options.idleMs / 1000} s: requests`, (r) => kinds(r.idle.requests) || "0"],
    ["startup: requests by verb", (r) => kinds(r.startup.requests)],
    ["watches open at the end", (r) => String(r.openWatchesAtEnd)],
    [
      "container-manager RSS after start / after reconcile / peak (MB)",
      (r) => `${mb(r.rssAfterStartBytes)} / ${mb(r.rssAfterReconcileBytes)} / ${mb(r.peakRssBytes)}`,
    ],
    ["load average (1 min) after reconcile / at the end", (r) => r.loadAverageDuring.map((l) => l.toFixed(1)).join(" / ")],
  ];
  const header = `| | ${results.map((r) => `${r.versions} x ${r.replicas}`).join(" | ")} |`;
  const rule = `|---|${results.map(() => "---").join("|")}|`;
  return [header, rule, ...rows.map(([name, f]) => `| ${name} | ${results.map(f).join(" | ")} |`)].join("\n");
}

function kinds(c: RequestCounts): string {
  return Object.entries(c.byKind)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
}

// -------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const largest = Math.max(...scenarios.map((s) => s.versions * s.replicas));
  // Room for the largest scenario and its replacements, with the kubelet's pod limit per node.
  const nodes = Math.ceil((largest * 1.2) / PODS_PER_NODE) + 1;
  const auditDir = join(tmpdir(), `clipper-k8s-scale-audit-${process.pid}`);
  const auditLog = join(auditDir, "audit.log");
  const policy = join(auditDir, "policy.yaml");
  rmSync(auditDir, { recursive: true, force: true });
  mkdirSync(auditDir, { recursive: true });
  running.add(async () => rmSync(auditDir, { recursive: true, force: true }));
  writeFileSync(
    policy,
    [
      "apiVersion: audit.k8s.io/v1",
      "kind: Policy",
      'omitStages: ["RequestReceived"]',
      "rules:",
      "  - level: Metadata",
      `    userGroups: [${scenarios.map((s) => `"system:serviceaccounts:${s.namespace}"`).join(", ")}]`,
      "  - level: None",
      "",
    ].join("\n"),
  );
  console.log(
    `scenarios ${scenarios.map((s) => `${s.versions}x${s.replicas}`).join(", ")}; ${nodes} kwok nodes of ${PODS_PER_NODE} pods; ` +
      `${cpus().length} cores, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
  );
  const results: ScenarioResult[] = [];
  let cluster: LoopbackCluster | undefined;
  try {
    cluster = await startLoopbackCluster({
      nodes,
      nodeCapacity: { cpu: "32", memory: "128Gi", pods: String(PODS_PER_NODE) },
      startTimeoutMs: 300_000,
      extraArgs: {
        "kube-apiserver": [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`],
        // The controller-manager's client defaults (20 QPS, burst 30) would make the ReplicaSet controller's pod creates
        // the whole story at 1000 pods; a production control plane raises them too.
        "kube-controller-manager": ["--kube-api-qps=200", "--kube-api-burst=400", "--concurrent-replicaset-syncs=10", "--concurrent-deployment-syncs=10"],
      },
      log: (line) => console.log(`[cluster] ${line}`),
    });
    const stopCluster = cluster.stop.bind(cluster);
    running.add(stopCluster);
    const admin = new KubeConfig();
    admin.loadFromFile(cluster.kubeconfigPath);
    const core = admin.makeApiClient(CoreV1Api);
    console.log(`cluster ready after ${cluster.timings.ready ?? "?"} ms`);
    for (const s of scenarios) results.push(await runScenario(cluster, core, auditLog, s));
  } finally {
    await cluster?.stop();
    rmSync(auditDir, { recursive: true, force: true });
    // The scenarios done so far, even when a later one failed.
    if (results.length > 0) console.log(`\n${table(results)}\n`);
  }
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify({ date: new Date().toISOString(), cores: cpus().length, options, results }, null, 2)}\n`);
  console.log(`results in ${options.out}`);
}

// Ctrl-C or a kill: the running scenario's services and the cluster are stopped before exiting (the cluster's own
// watchdog would kill its processes, but not the registry and container-manager).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping the services and the cluster`);
    // The newest first: the services, then the cluster, then its audit log.
    void (async () => {
      for (const stop of [...running].reverse()) await stop().catch(() => undefined);
      process.exit(130);
    })();
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof ClusterBinariesMissing ? err.message : err);
  process.exitCode = 1;
});
