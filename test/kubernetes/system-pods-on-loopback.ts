/**
 * A loopback cluster where the system's own pods run for real (docs/kubernetes.md, "The system's pods on loopback"):
 * no kwok node, so the scheduler binds every pod (the services' and the models') to the loopback kubelet's node; a
 * LoopbackServiceProxy gives the namespace's Services addresses and the kubelet resolves their names to them; the
 * services image's command (`node /opt/clipper/dist/<service>/main.mjs`) runs this checkout's bundles (built here, as
 * `clipper up` builds them) and the model image's `python3` the repository's venv; a real redis-server on loopback is
 * the registry's store (the manifests' Redis StatefulSet needs a PersistentVolume, which nothing provisions here:
 * deploy/kubernetes/components/external-redis replaces it).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { buildServices } from "../../services/build.js";
import { startRedisServer, type TestRedisServer } from "../../services/registry/testing/redis-server.js";
import { repoRoot } from "../system.js";
import { type LoopbackCluster, startLoopbackCluster } from "./loopback-cluster.js";
import { LoopbackKubelet } from "./loopback-kubelet.js";
import { LoopbackServiceProxy } from "./loopback-service-proxy.js";

export interface SystemPodsOnLoopback {
  cluster: LoopbackCluster;
  kubelet: LoopbackKubelet;
  proxy: LoopbackServiceProxy;
  redis: TestRedisServer;
  /**
   * Where /var/lib/clipper maps for a pod with no volume of its own there. The registry's and the container-manager's pods and
   * each model pod mount an emptyDir at that path, each a directory of that pod's own: the model pods fetch their artifact from the
   * container-manager's artifact server, they do not read its store.
   */
  dataDir: string;
  stop(): Promise<void>;
}

export async function startSystemPodsOnLoopback(options: { namespace: string; maxPods?: number; log?: (line: string) => void }): Promise<SystemPodsOnLoopback> {
  const log = options.log ?? (() => {});
  const [cluster, redis] = await Promise.all([startLoopbackCluster({ nodes: 0, log }), startRedisServer(), buildServices(repoRoot)]).then(
    ([c, r]) => [c, r] as const,
  );
  const dataDir = mkdtempSync(join(tmpdir(), "clipper-loopback-data-"));
  const admin = new KubeConfig();
  admin.loadFromFile(cluster.kubeconfigPath);
  const proxy = new LoopbackServiceProxy({ kubeConfig: admin, namespace: options.namespace, log });
  const kubelet = new LoopbackKubelet({
    kubeConfig: admin,
    pathMap: { "/opt/clipper": repoRoot, "/var/lib/clipper": dataDir },
    commandMap: { node: process.execPath, python3: join(repoRoot, ".venv", "bin", "python") },
    resolveHost: (namespace, host) => proxy.resolve(namespace, host),
    maxPods: options.maxPods ?? 16,
    maxGraceMs: 5_000,
    log,
  });
  const stop = async () => {
    await kubelet.close().catch(() => {});
    await proxy.close().catch(() => {});
    await cluster.stop();
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await proxy.start();
    await kubelet.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return { cluster, kubelet, proxy, redis, dataDir, stop };
}
