/** A namespace of the loopback cluster where the container-manager runs under its own Role, not as admin. */
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { repoRoot } from "../system.js";
import type { LoopbackCluster } from "./loopback-cluster.js";

/** The ServiceAccount, Role and RoleBinding deploy/kubernetes gives the container-manager. */
export const CONTAINER_MANAGER_RBAC_MANIFEST = join(repoRoot, "deploy", "kubernetes", "base", "container-manager-rbac.yaml");

/**
 * A new namespace with the container-manager's RBAC manifest applied, a kubeconfig for its ServiceAccount's token (the
 * namespace in its context, so the container-manager needs no --namespace), and an admin KubeConfig for the test's own
 * checks.
 */
export async function namespaceUnderContainerManagerRole(
  cluster: LoopbackCluster,
  prefix: string,
): Promise<{ namespace: string; kubeconfigPath: string; admin: KubeConfig }> {
  const namespace = await cluster.createNamespace(prefix);
  const applied = await cluster.kubectl(["apply", "-n", namespace, "-f", CONTAINER_MANAGER_RBAC_MANIFEST]);
  if (applied.code !== 0) throw new Error(`kubectl apply of ${CONTAINER_MANAGER_RBAC_MANIFEST} failed: ${applied.stderr}`);
  const token = await cluster.createServiceAccountToken(namespace, "clipper-container-manager");
  const kubeconfigPath = cluster.writeKubeconfig({ token, namespace });
  const admin = new KubeConfig();
  admin.loadFromFile(cluster.kubeconfigPath);
  return { namespace, kubeconfigPath, admin };
}

/** The container-manager's flags for the Kubernetes backend: the cluster by a kubeconfig, the model pods' image, the cluster name. */
export function kubernetesBackendArgs(o: { kubeconfig: string; clusterName: string; image: string }): string[] {
  return ["--backend", "kubernetes", "--kubeconfig", o.kubeconfig, "--cluster-name", o.clusterName, "--image", o.image];
}
