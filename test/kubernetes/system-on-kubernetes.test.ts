/**
 * The real services as processes (TestSystem: registry, then `container-manager --backend kubernetes`)
 * against the loopback cluster, the container-manager under the Role of
 * deploy/kubernetes/base/container-manager-rbac.yaml: DeployModel makes a Deployment whose pods the
 * registry hears of; a container-manager stopped (SIGTERM hands over) and started again adopts the
 * Deployment without a duplicate; the registry dropping the model deletes it. kwok's pods run
 * nothing: no prediction goes through them (docs/kubernetes.md).
 */
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { TestSystem, waitFor } from "../system.js";
import { kubernetesBackendArgs, namespaceUnderContainerManagerRole } from "./container-manager-role.js";
import { type LoopbackCluster, skipKubernetesTests, startLoopbackCluster } from "./loopback-cluster.js";

describe.skipIf(skipKubernetesTests())("the container-manager process with --backend kubernetes", () => {
  let cluster: LoopbackCluster;
  let system: TestSystem;
  let namespace: string;
  let apps: AppsV1Api;
  let core: CoreV1Api;

  beforeAll(async () => {
    cluster = await startLoopbackCluster();
    // The namespace comes from the kubeconfig's context (no --namespace).
    const role = await namespaceUnderContainerManagerRole(cluster, "sys");
    namespace = role.namespace;
    const { admin, kubeconfigPath: kubeconfig } = role;
    apps = admin.makeApiClient(AppsV1Api);
    core = admin.makeApiClient(CoreV1Api);
    system = new TestSystem({
      args: {
        "container-manager": [
          ...kubernetesBackendArgs({ kubeconfig, clusterName: "sys1", image: "registry.invalid/clipper/runtime:t" }),
          "--artifacts-port",
          "0",
        ],
      },
    });
    await system.startService("registry");
    await system.startService("container-manager");
  }, 180_000);

  afterAll(async () => {
    await system?.stop();
    await cluster?.stop();
  }, 60_000);

  const deployments = async () => (await apps.listNamespacedDeployment({ namespace, labelSelector: "app.kubernetes.io/managed-by=clipper" })).items;
  const livePods = async () => (await core.listNamespacedPod({ namespace })).items.filter((p) => p.metadata?.deletionTimestamp === undefined);
  const readyInRegistry = async (n: number) => {
    const res = await system.management().listReplicas({ modelName: "sum", modelVersion: "1" });
    const ready = (res.replicaSets[0]?.replicas ?? []).filter((r) => r.state === ReplicaState.READY);
    return ready.length === n ? ready : undefined;
  };

  it("deploys, hands over on SIGTERM, adopts on start, recreates a Deployment deleted behind its back, and deletes the Deployment when the registry drops the model", async () => {
    const t0 = Date.now();
    await system.deploy({
      name: "sum",
      version: "1",
      inputType: InputType.DOUBLES,
      desiredReplicas: 2,
      runtime: { kind: { case: "command", value: { argv: ["/bin/model-server"] } } },
    });
    const ready = await waitFor("the registry lists 2 READY replicas", () => readyInRegistry(2), 20_000);
    console.log(`DeployModel through the processes: 2 replicas READY in the registry after ${Date.now() - t0} ms`);
    for (const r of ready) expect(r.endpoint).toMatch(/^10\.244\.\d+\.\d+:7000$/);
    expect((await deployments()).map((d) => d.metadata?.labels?.["clipper.ai/cluster"])).toEqual(["sys1"]);

    await system.stopService("container-manager", "SIGTERM");
    expect((await deployments()).length).toBe(1);
    expect((await livePods()).length).toBe(2);
    await system.startService("container-manager");
    await system.containerManager().scaleModel({ name: "sum", version: "1", replicas: 3, timeoutSeconds: 20 });
    await waitFor("3 READY after the restart", () => readyInRegistry(3), 20_000);
    const after = await deployments();
    expect(after.length).toBe(1);
    expect(after[0]?.spec?.replicas).toBe(3);

    // Deleted behind its back: the reconciler starts the replicas again, which recreates the Deployment.
    const uid = after[0]?.metadata?.uid;
    await apps.deleteNamespacedDeployment({ name: after[0]?.metadata?.name ?? "", namespace });
    const t1 = Date.now();
    await waitFor(
      "the Deployment recreated with 3 replicas, READY in the registry",
      async () => {
        const d = await deployments();
        return d.length === 1 && d[0]?.metadata?.uid !== uid && d[0]?.spec?.replicas === 3 ? readyInRegistry(3) : undefined;
      },
      30_000,
    );
    console.log(`a Deployment deleted behind its back was recreated and READY in ${Date.now() - t1} ms`);

    await system.management().deleteModel({ name: "sum", version: "1" });
    await waitFor(
      "the Deployment and its pods are gone",
      async () => ((await deployments()).length === 0 && (await livePods()).length === 0 ? true : undefined),
      30_000,
    );
  }, 120_000);
});
