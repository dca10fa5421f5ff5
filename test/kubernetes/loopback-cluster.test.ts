/**
 * The loopback cluster itself (test/kubernetes/loopback-cluster.ts), driven with
 * @kubernetes/client-node as the container-manager will drive it: a Deployment's pods go Running
 * and Ready on a kwok node, RBAC refuses what no Role grants, a watch recovers from an apiserver
 * restart, and stop() leaves no process behind. Skipped when the binaries are not built, unless
 * CLIPPER_K8S_TESTS=1 (then it fails, saying how to build them). docs/kubernetes-testing.md.
 */
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  RbacAuthorizationV1Api,
  type V1ConfigMap,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KWOK_POD_CIDR, type LoopbackCluster, processExists, processesMentioning, skipKubernetesTests, startLoopbackCluster } from "./loopback-cluster.js";

async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms: ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await sleep(100);
  }
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === "Running" && (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const toInt = (s: string) => s.split(".").reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
  const mask = bits === "0" ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  return (toInt(ip) & mask) >>> 0 === (toInt(base!) & mask) >>> 0;
}

describe.skipIf(skipKubernetesTests())("a real Kubernetes cluster on loopback (kube-apiserver, controller-manager, scheduler, etcd; kwok nodes)", () => {
  let cluster: LoopbackCluster;
  let kc: KubeConfig;
  let namespace: string;

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startLoopbackCluster({ log: (line) => console.log(line) });
    console.log(`loopback cluster ready in ${Date.now() - t0} ms at ${cluster.server}: ${JSON.stringify(cluster.timings)}`);
    kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    namespace = await cluster.createNamespace("loopback");
  }, 150_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it("serves on 127.0.0.1 only, with the version built", async () => {
    expect(cluster.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const version = await cluster.request("GET", "/version");
    expect((version.json as { gitVersion: string }).gitVersion).toBe("v1.37.2");
  });

  it("runs a 3-replica Deployment's pods Running and Ready on the kwok node", async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const labels = { app: "loopback-noop" };
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: "noop", labels },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            // kwok never pulls or runs this image: the pod is an API object that kwok marks Running and Ready.
            spec: { containers: [{ name: "noop", image: "registry.invalid/clipper/noop:0", resources: { requests: { cpu: "10m", memory: "16Mi" } } }] },
          },
        },
      },
    });
    const pods = await eventually("3 pods Running and Ready", 30_000, async () => {
      const list = await core.listNamespacedPod({ namespace, labelSelector: "app=loopback-noop" });
      return list.items.length === 3 && list.items.every(isReady) ? list.items : undefined;
    });
    for (const pod of pods) {
      expect(pod.spec?.nodeName).toBe(cluster.nodeNames[0]);
      // A fake IP from kwok's CIDR: recorded, never dialled.
      expect(inCidr(pod.status?.podIP ?? "", KWOK_POD_CIDR)).toBe(true);
    }
    const deployment = await eventually("Deployment reports 3 available", 15_000, async () => {
      const d = await apps.readNamespacedDeployment({ namespace, name: "noop" });
      return d.status?.availableReplicas === 3 ? d : undefined;
    });
    expect(deployment.status?.readyReplicas).toBe(3);
  });

  it("authorizes with RBAC: a ServiceAccount without a Role gets 403, with one it is allowed", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "nobody" } } });
    const token = await cluster.createServiceAccountToken(namespace, "nobody");
    const asNobody = new KubeConfig();
    asNobody.loadFromFile(cluster.writeKubeconfig({ token, namespace, user: "nobody" }));
    const nobodyCore = asNobody.makeApiClient(CoreV1Api);

    const refused = await nobodyCore.listNamespacedPod({ namespace }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(ApiException);
    expect((refused as ApiException<unknown>).code).toBe(403);
    expect(String((refused as ApiException<unknown>).body)).toContain(`system:serviceaccount:${namespace}:nobody`);

    await rbac.createNamespacedRole({
      namespace,
      body: { metadata: { name: "pod-reader" }, rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list"] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "nobody-reads-pods" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
        subjects: [{ kind: "ServiceAccount", name: "nobody", namespace }],
      },
    });
    const allowed = await eventually(
      "the Role takes effect",
      10_000,
      async () => (await nobodyCore.listNamespacedPod({ namespace }).catch(() => undefined))?.items,
    );
    expect(allowed).toHaveLength(3);
    // Still nothing beyond the Role: not another verb, not another namespace.
    const del = await cluster.request("DELETE", `/api/v1/namespaces/${namespace}/pods/x`, undefined, { token });
    expect(del.status).toBe(403);
    const otherNs = await cluster.request("GET", "/api/v1/namespaces/default/pods", undefined, { token });
    expect(otherNs.status).toBe(403);
  });

  it("recovers watches when kube-apiserver restarts or crashes (an informer re-watches; a watch from the last resourceVersion resumes or is told 410)", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    const informer = makeInformer<V1ConfigMap>(kc, path, () => core.listNamespacedConfigMap({ namespace }));
    const seen = new Set<string>();
    let errors = 0;
    let stopped = false;
    informer.on("add", (cm) => seen.add(cm.metadata?.name ?? ""));
    // client-node's informer stops on an error (the apiserver gone); the owner restarts it.
    informer.on("error", () => {
      errors++;
      if (!stopped) setTimeout(() => void informer.start().catch(() => {}), 200);
    });

    // A plain watch, to see what a client resuming from its last resourceVersion gets.
    const watch = new Watch(kc);
    let lastRv = "";
    const firstWatch = await watch.watch(
      path,
      { allowWatchBookmarks: true },
      (_type, obj: V1ConfigMap) => {
        lastRv = obj.metadata?.resourceVersion ?? lastRv;
      },
      () => {},
    );
    try {
      await informer.start();
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "before-restart" }, data: { a: "1" } } });
      await eventually("informer sees before-restart", 10_000, async () => (seen.has("before-restart") ? true : undefined));
      await eventually("watch sees before-restart", 10_000, async () => (lastRv !== "" ? true : undefined));

      const t0 = Date.now();
      await cluster.restartApiserver({ downMs: 500 });
      console.log(`kube-apiserver restarted and ready in ${Date.now() - t0} ms`);
      firstWatch.abort();

      // Written before any client re-watches: a resumed watch must deliver it from the old resourceVersion.
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "gap" }, data: { a: "2" } } });
      const resumed: { type: string; name: string; code?: number }[] = [];
      const secondWatch = await watch.watch(
        path,
        { resourceVersion: lastRv, allowWatchBookmarks: true },
        (type, obj: V1ConfigMap & { code?: number }) => {
          resumed.push({ type, name: obj.metadata?.name ?? "", ...(obj.code !== undefined ? { code: obj.code } : {}) });
        },
        () => {},
      );
      try {
        const outcome = await eventually("the watch from the old resourceVersion delivers 'gap' or answers 410 Gone", 15_000, async () =>
          resumed.find((e) => (e.type === "ADDED" && e.name === "gap") || (e.type === "ERROR" && e.code === 410)),
        );
        console.log(`watch from resourceVersion ${lastRv} after the restart: ${JSON.stringify(outcome)}`);
        if (outcome.type === "ERROR") {
          // 410: the restarted apiserver's watch cache begins after lastRv; relisting is the client's duty, and sees "gap".
          const list = await core.listNamespacedConfigMap({ namespace });
          expect(list.items.map((c) => c.metadata?.name)).toContain("gap");
        }
      } finally {
        secondWatch.abort();
      }

      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "after-restart" }, data: { a: "3" } } });
      await eventually("the informer resumes and sees gap and after-restart", 20_000, async () =>
        seen.has("gap") && seen.has("after-restart") ? true : undefined,
      );

      // A crash this time (SIGKILL: connections reset, no graceful end of the watches).
      const t1 = Date.now();
      await cluster.restartApiserver({ signal: "SIGKILL" });
      console.log(`kube-apiserver killed, restarted and ready in ${Date.now() - t1} ms`);
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "after-crash" }, data: { a: "4" } } });
      await eventually("the informer resumes after a crash and sees after-crash", 20_000, async () => (seen.has("after-crash") ? true : undefined));

      const names = informer.list(namespace).map((c) => c.metadata?.name);
      expect(names).toEqual(expect.arrayContaining(["before-restart", "gap", "after-restart", "after-crash"]));
      expect(new Set(names).size).toBe(names.length);
      console.log(`informer errors during the restart: ${errors}`);
    } finally {
      stopped = true;
      await informer.stop();
      firstWatch.abort();
    }
  }, 90_000);

  it("stop() kills every process it started and removes its temp dir", async () => {
    const dir = cluster.dir;
    const procs = cluster.processes();
    expect(procs.map((p) => p.name)).toEqual(expect.arrayContaining(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]));
    const t0 = Date.now();
    await cluster.stop();
    console.log(`loopback cluster stopped in ${Date.now() - t0} ms`);
    for (const p of procs) {
      expect(processExists(p.pid), `${p.name} ${p.pid}`).toBe(false);
      expect(processExists(-p.pid), `process group of ${p.name} ${p.pid}`).toBe(false);
    }
    expect(processesMentioning(dir)).toEqual([]);
    if (process.env.CLIPPER_K8S_KEEP !== "1") expect(existsSync(dir)).toBe(false);
  }, 60_000);
});
