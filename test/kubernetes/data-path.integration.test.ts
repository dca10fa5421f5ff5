/**
 * The data path through Kubernetes on loopback: the services as processes (registry,
 * `container-manager --backend kubernetes` under the ServiceAccount's Role, router, gateway), a Python
 * closure deployed as a model Deployment whose pods the scheduler binds to the node the loopback kubelet
 * plays (the container-manager's --model-node-selector and --model-tolerations; the node is tainted, the
 * kwok node is not selected), and real predictions over REST answered by the pods' processes on
 * 127.A.B.N:7000, the addresses the agent reports as pod IPs. Then: a pod set not-ready by its own
 * failing health check (its process SIGSTOPped) leaves the router's rotation and comes back; a version
 * switch under load loses no query; a crashed process is restarted and its restart count reported.
 * docs/kubernetes.md, "The data path on loopback".
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { type Replica, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { postJson, repoRoot, TestSystem, waitFor } from "../system.js";
import { kubernetesBackendArgs, namespaceUnderContainerManagerRole } from "./container-manager-role.js";
import { type LoopbackCluster, skipKubernetesTests, startLoopbackCluster } from "./loopback-cluster.js";
import { LoopbackKubelet } from "./loopback-kubelet.js";

const venvPython = join(repoRoot, ".venv", "bin", "python");
const CLUSTER_NAME = "dp";
const APP = "who";
const MODEL = "who-answers";
/** The node pool the model pods are confined to: a label for their nodeSelector, a taint they tolerate. */
const POOL = { label: "clipper.ai/node-pool", value: "loopback" };
const TAINT = { key: "clipper.ai/models", value: "loopback", effect: "NoSchedule" };

/** A closure answering "<version> <pid> <the address it serves on> <sum>", pickled by the SDK as deploy_python_closure does. */
function closureArtifact(version: string): Buffer {
  const script = [
    "import sys",
    `sys.path.insert(0, ${JSON.stringify(join(repoRoot, "sdk", "python", "src"))})`,
    "from clipper_runtime.artifact import dump_artifact",
    "def predict(xs):",
    "    import os",
    `    return [f"${version} {os.getpid()} {os.environ.get('CLIPPER_MODEL_HOST', '')} {sum(x)}" for x in xs]`,
    "sys.stdout.buffer.write(dump_artifact(predict))",
  ].join("\n");
  return execFileSync(venvPython, ["-c", script]);
}

interface Answer {
  status: number;
  version: string;
  pid: number;
  host: string;
  isDefault: boolean;
  raw: string;
  sentAtMs: number;
}

describe.skipIf(skipKubernetesTests())("predictions through pods the scheduler placed, run by the loopback kubelet", () => {
  let cluster: LoopbackCluster;
  let system: TestSystem;
  let kubelet: LoopbackKubelet;
  let namespace: string;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  const kubeletLog: string[] = [];

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startLoopbackCluster();
    const role = await namespaceUnderContainerManagerRole(cluster, "dp");
    namespace = role.namespace;
    const { admin, kubeconfigPath: kubeconfig } = role;
    core = admin.makeApiClient(CoreV1Api);
    apps = admin.makeApiClient(AppsV1Api);
    system = new TestSystem({
      args: {
        "container-manager": [
          ...kubernetesBackendArgs({ kubeconfig, clusterName: CLUSTER_NAME, image: "registry.invalid/clipper/model-runtime:test" }),
          "--model-node-selector",
          `${POOL.label}=${POOL.value}`,
          "--model-tolerations",
          `${TAINT.key}=${TAINT.value}:${TAINT.effect}`,
          // The artifact server the pods fetch from: any free port (its URL, http://127.0.0.1:<port>, is in their env).
          "--artifacts-port",
          "0",
        ],
      },
    });
    // The image's paths, here: the runtime's sources are the checkout's; the image's python3 is the repository's venv (its
    // PATH first, as the image's). /var/lib/clipper is each pod's own emptyDir, where the pod fetches its artifact: nothing
    // maps it to the container-manager's data dir.
    kubelet = new LoopbackKubelet({
      kubeConfig: admin,
      pathMap: { "/opt/clipper": repoRoot },
      commandMap: { python3: venvPython },
      baseEnv: { PATH: `${join(repoRoot, ".venv", "bin")}:${process.env.PATH ?? ""}`, HOME: process.env.HOME ?? "/tmp", LANG: process.env.LANG ?? "C.UTF-8" },
      labels: { [POOL.label]: POOL.value },
      taints: [TAINT],
      maxPods: 8,
      maxGraceMs: 5_000,
      log: (line) => {
        kubeletLog.push(`${new Date().toISOString()} ${line}`);
        if (kubeletLog.length > 300) kubeletLog.shift();
      },
    });
    await kubelet.start();
    await system.start();
    console.log(`cluster, loopback kubelet and services up in ${Date.now() - t0} ms`);
  }, 180_000);

  afterAll(async () => {
    console.log(`loopback kubelet, last lines:\n${kubeletLog.slice(-40).join("\n")}`);
    await system?.stop();
    await kubelet?.close();
    await cluster?.stop();
  }, 90_000);

  async function upload(artifact: Buffer): Promise<string> {
    const digest = createHash("sha256").update(artifact).digest("hex");
    async function* parts() {
      yield { part: { case: "header" as const, value: { sizeBytes: BigInt(artifact.length), sha256: digest } } };
      yield { part: { case: "chunk" as const, value: artifact } };
    }
    await system.containerManager().uploadArtifact(parts());
    return digest;
  }

  const model = (version: string, digest: string) => ({
    name: MODEL,
    version,
    inputType: InputType.DOUBLES,
    desiredReplicas: 2,
    runtime: { kind: { case: "pythonClosure" as const, value: { artifactDigest: digest } } },
  });

  async function predict(x: number): Promise<Answer> {
    const sentAtMs = Date.now();
    const res = await postJson(`${system.gatewayUrl}/${APP}/predict`, { input: [x, 1] });
    const raw = String(res.json.output ?? JSON.stringify(res.json));
    const [version = "", pid = "0", host = ""] = raw.split(" ");
    return { status: res.status, version, pid: Number(pid), host, isDefault: res.json.default === true, raw, sentAtMs };
  }

  /** `n` queries, `concurrency` at a time. */
  async function burst(n: number, concurrency: number): Promise<Answer[]> {
    const answers: Answer[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) answers.push(await predict(next++));
      }),
    );
    return answers;
  }

  const replicasInRegistry = async (version: string): Promise<Replica[]> =>
    (await system.management().listReplicas({ modelName: MODEL, modelVersion: version })).replicaSets[0]?.replicas ?? [];
  const livePods = async (version: string): Promise<V1Pod[]> =>
    (await core.listNamespacedPod({ namespace, labelSelector: `clipper.ai/cluster=${CLUSTER_NAME},clipper.ai/version=${version}` })).items.filter(
      (p) => p.metadata?.deletionTimestamp === undefined,
    );
  const agentPod = (name: string) => kubelet.pods().find((p) => p.name === name);

  it("deploys a Python closure onto the loopback node; a REST prediction is answered by the pod's own process on its pod IP", async () => {
    const t0 = Date.now();
    const digest = await upload(closureArtifact("v1"));
    await system.deployApp(APP, model("1", digest), { timeoutSeconds: 60, sloMicros: 3_000_000n, defaultOutput: "DEFAULT" });
    console.log(`DeployModel of 2 Python replicas through the loopback kubelet: ${Date.now() - t0} ms`);

    const pods = await livePods("1");
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(p.spec?.nodeName).toBe(kubelet.nodeName);
      expect(p.spec?.nodeSelector).toEqual({ [POOL.label]: POOL.value });
      expect(p.spec?.tolerations).toContainEqual({ key: TAINT.key, operator: "Equal", value: TAINT.value, effect: TAINT.effect });
      const mine = agentPod(p.metadata?.name ?? "");
      expect(mine?.address).toMatch(/^127\.\d+\.\d+\.\d+$/);
      expect(p.status?.podIP).toBe(mine?.address);
      expect(p.status?.phase).toBe("Running");
      expect(mine?.firstReadyAtMs).toBeDefined();
      console.log(`pod ${p.metadata?.name}: seen by the agent to Ready ${(mine?.firstReadyAtMs ?? 0) - (mine?.seenAtMs ?? 0)} ms`);
    }
    // The registry's replicas are the pods, at their pod IPs.
    const replicas = await replicasInRegistry("1");
    expect(replicas.map((r) => r.endpoint).sort()).toEqual(pods.map((p) => `${p.status?.podIP}:7000`).sort());
    expect(replicas.every((r) => r.state === ReplicaState.READY)).toBe(true);

    const answer = await predict(5);
    expect(answer.status, answer.raw).toBe(200);
    expect(answer.isDefault, answer.raw).toBe(false);
    expect(answer.version).toBe("v1");
    const served = kubelet.pods().find((p) => p.pid === answer.pid);
    expect(served, `pid ${answer.pid} is one of the agent's processes: ${JSON.stringify(kubelet.pods())}`).toBeDefined();
    expect(answer.host).toBe(served?.address);
    expect(answer.raw.endsWith(" 6.0")).toBe(true);
    // That process is the runtime the backend's pod spec names (python3 -m clipper_runtime.closure_runner), exec'd by the
    // artifact fetch after it downloaded the artifact into the pod's own emptyDir and verified its sha256.
    expect(readFileSync(`/proc/${answer.pid}/cmdline`, "utf8").split("\0")).toEqual(["python3", "-m", "clipper_runtime.closure_runner", ""]);
    const environ = Object.fromEntries(
      readFileSync(`/proc/${answer.pid}/environ`, "utf8")
        .split("\0")
        .filter((kv) => kv.includes("="))
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    const fetched = environ.CLIPPER_ARTIFACT ?? "";
    expect(fetched).toMatch(new RegExp(`-volumes/data/artifacts/sha256/${digest}$`));
    expect(fetched.startsWith(system.dataDir)).toBe(false);
    expect(createHash("sha256").update(readFileSync(fetched)).digest("hex")).toBe(digest);
    expect(environ.CLIPPER_ARTIFACT_URL).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/artifacts/${digest}$`));
  }, 90_000);

  it("a pod whose health check fails (its process stopped) leaves the router's rotation, and comes back when it answers again", async () => {
    const [a, b] = kubelet.pods().filter((p) => p.pid !== undefined);
    if (a?.pid === undefined || b?.pid === undefined) throw new Error(`two running pods expected: ${JSON.stringify(kubelet.pods())}`);
    process.kill(-a.pid, "SIGSTOP");
    const t0 = Date.now();
    try {
      await waitFor(
        `replica ${a.name} not READY in the registry`,
        async () => {
          const r = (await replicasInRegistry("1")).find((x) => x.id === a.name);
          return r !== undefined && r.state !== ReplicaState.READY ? r : undefined;
        },
        30_000,
      );
      console.log(`a stopped process: its pod not Ready and the registry told in ${Date.now() - t0} ms (readinessProbe period 2 s, 3 failures)`);
      // The routers learn of it from the registry's WatchConfig stream, a moment after the registry.
      await sleep(1_000);
      const answers = await burst(24, 4);
      for (const x of answers) {
        expect(x.status, x.raw).toBe(200);
        expect(x.isDefault, x.raw).toBe(false);
        expect(x.pid, x.raw).toBe(b.pid);
      }
    } finally {
      process.kill(-a.pid, "SIGCONT");
    }
    const t1 = Date.now();
    await waitFor(
      `replica ${a.name} READY again`,
      async () => ((await replicasInRegistry("1")).find((x) => x.id === a.name)?.state === ReplicaState.READY ? true : undefined),
      30_000,
    );
    console.log(`resumed: READY again in the registry after ${Date.now() - t1} ms`);
    // Bursts of 8 at once until one reaches it (the router favours the replica with the best recent latency).
    const after: Answer[] = [];
    const until = Date.now() + 20_000;
    while (!after.some((x) => x.pid === a.pid) && Date.now() < until) after.push(...(await burst(16, 8)));
    expect(after.filter((x) => x.status !== 200 || x.isDefault).map((x) => x.raw)).toEqual([]);
    expect(
      after.some((x) => x.pid === a.pid),
      `${after.length} answers, none from ${a.name} (pid ${a.pid})`,
    ).toBe(true);
  }, 90_000);

  it("a version switch under load loses no query: every answer is version 1's or 2's, none a default or an error", async () => {
    const digest = await upload(closureArtifact("v2"));
    const answers: Answer[] = [];
    let loading = true;
    let x = 0;
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (loading) answers.push(await predict(x++));
      }),
    );
    const t0 = Date.now();
    let switchedAtMs = 0;
    let v1GoneAtMs = 0;
    try {
      await sleep(500);
      await system.deploy(model("2", digest), 60);
      switchedAtMs = Date.now();
      await system.containerManager().scaleModel({ name: MODEL, version: "1", replicas: 0, timeoutSeconds: 30 });
      await waitFor(
        "version 1's pods, processes and Deployment gone",
        async () => {
          const v1Processes = kubelet.pods().filter((p) => p.name.includes(`-${MODEL}-1-`));
          const deployments = await apps.listNamespacedDeployment({ namespace, labelSelector: `clipper.ai/version=1` });
          return (await livePods("1")).length === 0 && v1Processes.length === 0 && deployments.items.length === 0 ? true : undefined;
        },
        30_000,
      );
      v1GoneAtMs = Date.now();
      await sleep(1_000);
    } finally {
      loading = false;
      await load;
    }
    const bad = answers.filter((a) => a.status !== 200 || a.isDefault || (a.version !== "v1" && a.version !== "v2"));
    const v1 = answers.filter((a) => a.version === "v1").length;
    const v2 = answers.filter((a) => a.version === "v2").length;
    console.log(
      `version switch under load (4 callers): ${answers.length} queries in ${Date.now() - t0} ms, ${v1} answered by version 1, ${v2} by version 2, ` +
        `${bad.length} lost; version 2 current ${switchedAtMs - t0} ms in, version 1 gone ${v1GoneAtMs - t0} ms in`,
    );
    expect(bad.map((a) => a.raw)).toEqual([]);
    expect(v1).toBeGreaterThan(0);
    expect(v2).toBeGreaterThan(0);
    // Sent after version 1's processes were gone: version 2's.
    expect(answers.filter((a) => a.sentAtMs > v1GoneAtMs).every((a) => a.version === "v2")).toBe(true);
    const v2Pids = new Set(kubelet.pods().map((p) => p.pid));
    expect(answers.filter((a) => a.version === "v2").every((a) => v2Pids.has(a.pid))).toBe(true);
  }, 90_000);

  it("a crashed process is restarted by the agent in the same pod, and its restart count reaches the registry", async () => {
    const victim = kubelet.pods().find((p) => p.pid !== undefined);
    if (victim?.pid === undefined) throw new Error("no running pod");
    process.kill(-victim.pid, "SIGKILL");
    const r = await waitFor(
      `replica ${victim.name} READY again with 1 restart`,
      async () => {
        const found = (await replicasInRegistry("2")).find((x) => x.id === victim.name);
        return found?.state === ReplicaState.READY && found.restarts === 1 ? found : undefined;
      },
      30_000,
    );
    expect(r.endpoint).toBe(`${victim.address}:7000`);
    const pod = (await livePods("2")).find((p) => p.metadata?.name === victim.name);
    expect(pod?.status?.containerStatuses?.[0]?.restartCount).toBe(1);
    expect(pod?.status?.containerStatuses?.[0]?.lastState?.terminated).toMatchObject({ signal: 9, exitCode: 137 });
    const after = agentPod(victim.name);
    expect(after?.pid).not.toBe(victim.pid);
    const answers = await burst(8, 2);
    expect(answers.every((a) => a.status === 200 && !a.isDefault && a.version === "v2")).toBe(true);
  }, 60_000);

  it("an artifact whose bytes no longer match its digest (damaged at rest in the store) fails the deploy with the pod's reason", async () => {
    const digest = await upload(closureArtifact("v9"));
    writeFileSync(join(system.dataDir, "artifacts", "sha256", digest), "damaged");
    const t0 = Date.now();
    const failure = await system.deploy({ ...model("9", digest), desiredReplicas: 1 }, 60).then(
      () => "deployed",
      (err: unknown) => String(err),
    );
    console.log(`deploy of a damaged artifact failed in ${Date.now() - t0} ms: ${failure.slice(0, 400)}`);
    expect(failure).toContain(`clipper artifact fetch: sha256 mismatch: expected ${digest}`);
    expect(failure).toContain("refusing to load it");
    expect(failure).toContain("CrashLoopBackOff");
    // Version 2 still answers.
    const answers = await burst(4, 2);
    expect(answers.every((a) => a.status === 200 && a.version === "v2")).toBe(true);
  }, 90_000);
});
