/**
 * deploy/kubernetes on the real loopback cluster (docs/kubernetes-testing.md): the kustomization renders
 * with the services' real flags; `kubectl apply --dry-run=server -k deploy/kubernetes` passes; applied for
 * real, its objects are there as specified and kwok makes its pods Running and Ready; the pods meet the
 * "restricted" Pod Security level (the apiserver's own admission decides); the NetworkPolicies admit
 * exactly the intended connections (evaluated from the live objects: no network plugin enforces them
 * here). Then the container-manager (the real process, from dist/) runs with a kubeconfig holding the
 * token of the ServiceAccount the manifests create (TokenRequest API), not as cluster admin: deploy,
 * scale, an unschedulable deploy and delete work under the Role, the apiserver's audit log shows it used
 * exactly the verbs the Role grants (a Role granting more or less fails this test), and what lies outside
 * the Role is refused.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AppsV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  loadAllYaml,
  NetworkingV1Api,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  type V1Container,
  type V1Deployment,
  type V1NetworkPolicy,
  type V1PodTemplateSpec,
  type V1Service,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { type ConfigChange, type ConfigSnapshot, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { BUNDLED_SERVICES, type BundledService, buildServices, serviceBundle } from "../../services/build.js";
import { DEFAULT_KUBERNETES_OPTIONS } from "../../services/container-manager/index.js";
import { repoRoot, TestSystem, waitFor } from "../system.js";
import { type LoopbackCluster, skipKubernetesTests, startLoopbackCluster } from "./loopback-cluster.js";
import { admits, type Source } from "./network-policy.js";

const KUSTOMIZATION = join(repoRoot, "deploy", "kubernetes");
const NAMESPACE = "clipper";
const SERVICE_ACCOUNT = "clipper-container-manager";
const SA_USER = `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`;
/** The Role's grants, as `<apiGroup>/<resource> <verb>` ("" is the core group). */
const ROLE_GRANTS = [
  "apps/deployments create",
  "apps/deployments delete",
  "apps/deployments list",
  "apps/deployments patch",
  "apps/deployments watch",
  "/events list",
  "/pods delete",
  "/pods list",
  "/pods patch",
  "/pods watch",
];

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface AuditEvent {
  stage: string;
  verb: string;
  user?: { username?: string };
  objectRef?: { apiGroup?: string; resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  requestURI: string;
}

const execFileText = async (file: string, args: string[]): Promise<string> => {
  const { execFile } = await import("node:child_process");
  return new Promise((resolve, reject) =>
    execFile(file, args, { timeout: 30_000, cwd: repoRoot }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
};

describe.skipIf(skipKubernetesTests())("deploy/kubernetes on the loopback cluster", () => {
  let cluster: LoopbackCluster;
  let auditDir: string;
  let rendered: KubeObject[];
  let apps: AppsV1Api;
  let core: CoreV1Api;

  const ofKind = <T = KubeObject>(kind: string): T[] => rendered.filter((o) => o.kind === kind) as unknown as T[];
  const workloads = () => [...ofKind<V1Deployment>("Deployment"), ...ofKind<V1StatefulSet>("StatefulSet")];
  const templateOf = (w: V1Deployment | V1StatefulSet): V1PodTemplateSpec => w.spec?.template ?? {};
  const kubectlOk = async (args: string[], input?: string) => {
    const result = await cluster.kubectl(args, input === undefined ? {} : { input });
    expect(result.code, `kubectl ${args.join(" ")}\n${result.stderr}`).toBe(0);
    return result.stdout;
  };

  beforeAll(async () => {
    // The apiserver's audit log: every request of this namespace's ServiceAccounts, with its verb, resource and status.
    auditDir = mkdtempSync(join(tmpdir(), "clipper-k8s-audit-"));
    writeFileSync(
      join(auditDir, "policy.yaml"),
      [
        "apiVersion: audit.k8s.io/v1",
        "kind: Policy",
        'omitStages: ["RequestReceived"]',
        "rules:",
        "  - level: Metadata",
        `    userGroups: ["system:serviceaccounts:${NAMESPACE}"]`,
        "  - level: None",
        "",
      ].join("\n"),
    );
    cluster = await startLoopbackCluster({
      extraArgs: { "kube-apiserver": [`--audit-policy-file=${join(auditDir, "policy.yaml")}`, `--audit-log-path=${join(auditDir, "audit.log")}`] },
    });
    const admin = new KubeConfig();
    admin.loadFromFile(cluster.kubeconfigPath);
    apps = admin.makeApiClient(AppsV1Api);
    core = admin.makeApiClient(CoreV1Api);
    rendered = loadAllYaml(await kubectlOk(["kustomize", KUSTOMIZATION])) as KubeObject[];
    await buildServices(repoRoot);
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
    if (auditDir !== undefined) rmSync(auditDir, { recursive: true, force: true });
  }, 60_000);

  it("renders every object into the namespace, with the images of `images:` and the services' real flags", async () => {
    const kinds = rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        `ConfigMap/${ofKind("ConfigMap")[0]?.metadata.name ?? "<none>"}`,
        "Deployment/clipper-container-manager",
        "Deployment/clipper-gateway",
        "Deployment/clipper-registry",
        "Deployment/clipper-router",
        "Namespace/clipper",
        "NetworkPolicy/clipper-container-manager",
        "NetworkPolicy/clipper-default-deny-ingress",
        "NetworkPolicy/clipper-gateway",
        "NetworkPolicy/clipper-model-pods",
        "NetworkPolicy/clipper-redis",
        "NetworkPolicy/clipper-registry",
        "NetworkPolicy/clipper-router",
        "PodDisruptionBudget/clipper-gateway",
        "PodDisruptionBudget/clipper-router",
        "Role/clipper-container-manager",
        "RoleBinding/clipper-container-manager",
        "Service/clipper-container-manager",
        "Service/clipper-gateway",
        "Service/clipper-redis",
        "Service/clipper-registry",
        "Service/clipper-router",
        "ServiceAccount/clipper-container-manager",
        "StatefulSet/clipper-redis",
      ].sort(),
    );
    // Nothing cluster-wide but the Namespace itself.
    for (const o of rendered) if (o.kind !== "Namespace") expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(NAMESPACE);
    expect(ofKind("ConfigMap")[0]?.metadata.name).toMatch(/^clipper-registry-[a-z0-9]{10}$/);

    const images = new Set(workloads().flatMap((w) => (templateOf(w).spec?.containers ?? []).map((c) => c.image)));
    expect([...images].sort()).toEqual(["clipper/services:0.1.0", "redis:7.2.5-alpine"]);
    const manager = containerOf("clipper-container-manager");
    expect(manager.env?.find((e) => e.name === "CLIPPER_MODEL_IMAGE")?.value).toBe("clipper/model-runtime:0.1.0");

    // Every flag and CLIPPER_* variable a service container is given is one that service's --help lists.
    const configMap = ofKind("ConfigMap")[0] as unknown as { data: Record<string, string> };
    for (const w of ofKind<V1Deployment>("Deployment")) {
      for (const c of templateOf(w).spec?.containers ?? []) {
        const bundle = /^\/opt\/clipper\/dist\/([a-z-]+)\/main\.mjs$/.exec(c.command?.[1] ?? "")?.[1];
        expect(c.command?.[0]).toBe("node");
        expect(BUNDLED_SERVICES as readonly string[], `${w.metadata?.name} runs a bundle of services/build.ts`).toContain(bundle);
        const help = await execFileText(process.execPath, [serviceBundle(repoRoot, bundle as BundledService), "--help"]);
        const flags = (c.args ?? []).filter((a) => a.startsWith("--"));
        expect(flags.length).toBeGreaterThan(0);
        for (const flag of flags) expect(help, `${bundle} has ${flag}`).toMatch(new RegExp(`^\\s+${flag}\\s`, "m"));
        const envNames = [
          ...(c.env ?? []).map((e) => e.name),
          ...(c.envFrom ?? []).flatMap((from) => (from.configMapRef !== undefined ? Object.keys(configMap.data) : [])),
        ];
        for (const name of envNames) expect(help, `${bundle} reads $${name}`).toContain(`env ${name},`);
        // The container's ports are those its flags name.
        for (const p of c.ports ?? []) expect(c.args?.join(" "), `${w.metadata?.name}: port ${p.name}`).toContain(String(p.containerPort));
      }
    }
    expect(configMap.data).toEqual({ CLIPPER_REGISTRY_STORE: "redis", CLIPPER_REDIS_URL: "redis://clipper-redis:6379", CLIPPER_REDIS_PREFIX: "clipper:" });
  }, 60_000);

  it("gives every container probes on its health service, requests and limits, and a PodDisruptionBudget to every workload of more than one replica", () => {
    const pdbs = ofKind<{ spec: { selector: { matchLabels: Record<string, string> }; minAvailable: number } }>("PodDisruptionBudget");
    for (const w of workloads()) {
      const name = w.metadata?.name ?? "";
      const spec = templateOf(w).spec;
      for (const c of spec?.containers ?? []) {
        for (const probe of [c.readinessProbe, c.livenessProbe]) {
          expect(probe, `${name}/${c.name} has readiness and liveness probes`).toBeDefined();
          if (probe?.grpc !== undefined) {
            // Native gRPC probes on the port the service serves grpc.health.v1 on.
            expect(c.ports?.find((p) => p.name === "grpc")?.containerPort).toBe(probe.grpc.port);
          }
        }
        for (const kind of ["requests", "limits"] as const) {
          expect(c.resources?.[kind]?.cpu, `${name}/${c.name} ${kind}.cpu`).toBeDefined();
          expect(c.resources?.[kind]?.memory, `${name}/${c.name} ${kind}.memory`).toBeDefined();
        }
      }
      const replicas = w.spec?.replicas ?? 1;
      const pdb = pdbs.filter((p) => Object.entries(p.spec.selector.matchLabels).every(([k, v]) => templateOf(w).metadata?.labels?.[k] === v));
      expect(pdb.length, `${name}: ${replicas} replicas, ${pdb.length} PodDisruptionBudgets`).toBe(replicas > 1 ? 1 : 0);
      if (replicas > 1) expect(pdb[0]?.spec.minAvailable).toBeLessThan(replicas);
    }
    const probeKinds = Object.fromEntries(
      workloads().map((w) => {
        const c = templateOf(w).spec?.containers?.[0];
        return [
          w.metadata?.name,
          [c?.readinessProbe, c?.livenessProbe].map((p) => Object.keys(p ?? {}).find((k) => ["grpc", "httpGet", "exec", "tcpSocket"].includes(k))),
        ];
      }),
    );
    expect(probeKinds).toEqual({
      "clipper-container-manager": ["grpc", "grpc"],
      "clipper-gateway": ["httpGet", "httpGet"],
      "clipper-redis": ["exec", "tcpSocket"],
      "clipper-registry": ["grpc", "grpc"],
      "clipper-router": ["grpc", "grpc"],
    });
    // The model pods' port (the backend's) is the one their NetworkPolicy opens.
    const policies = ofKind<V1NetworkPolicy>("NetworkPolicy");
    const modelPolicy = policies.find((p) => p.metadata?.name === "clipper-model-pods");
    expect(modelPolicy?.spec?.ingress?.[0]?.ports?.[0]?.port).toBe(DEFAULT_KUBERNETES_OPTIONS.containerPort);
    // The model pods fetch their artifact from the URL the container-manager gives them: its Service, on the Service's
    // artifacts port, which leads to the container port its artifact server listens on, the one the policy opens to them.
    const manager = containerOf("clipper-container-manager");
    const flag = (name: string) => {
      const at = manager.args?.indexOf(name) ?? -1;
      return at < 0 ? undefined : manager.args?.[at + 1];
    };
    const artifactsUrl = new URL(flag("--artifacts-url") ?? "");
    const service = ofKind<V1Service>("Service").find((s) => s.metadata?.name === "clipper-container-manager");
    const servicePort = service?.spec?.ports?.find((p) => p.name === "artifacts");
    expect(artifactsUrl.protocol).toBe("http:");
    expect(artifactsUrl.hostname).toBe(service?.metadata?.name);
    expect(artifactsUrl.pathname).toBe("/");
    expect(Number(artifactsUrl.port)).toBe(servicePort?.port);
    expect(servicePort?.targetPort).toBe("artifacts");
    const containerPort = manager.ports?.find((p) => p.name === "artifacts")?.containerPort;
    expect(containerPort).toBe(Number(flag("--artifacts-port")));
    const managerPolicy = policies.find((p) => p.metadata?.name === "clipper-container-manager");
    const modelRules = (managerPolicy?.spec?.ingress ?? []).filter((r) =>
      r._from?.some((peer) => peer.podSelector?.matchLabels?.["app.kubernetes.io/name"] === "clipper-model"),
    );
    expect(modelRules.flatMap((r) => r.ports?.map((p) => p.port) ?? [])).toEqual([containerPort]);
  });

  it("passes `kubectl apply --dry-run=server -k deploy/kubernetes` (once its Namespace exists) and creates nothing by it", async () => {
    // On an empty cluster the server refuses every namespaced object of a dry run: the Namespace is not really
    // created, so "namespaces clipper not found". That is Kubernetes' behaviour, checked here so the docs stay true.
    const fresh = await cluster.kubectl(["apply", "--dry-run=server", "-k", KUSTOMIZATION]);
    expect(fresh.stdout).toContain("namespace/clipper created (server dry run)");
    const refusals = fresh.stderr.split("\n").filter((l) => l.trim() !== "");
    expect(refusals.length).toBeGreaterThan(0);
    for (const line of refusals) expect(line).toMatch(/namespaces "clipper" not found/);
    expect((await core.listNamespace()).items.map((n) => n.metadata?.name)).not.toContain(NAMESPACE);

    await kubectlOk(["apply", "-f", "-"], JSON.stringify(ofKind("Namespace")[0]));
    const dry = await kubectlOk(["apply", "--dry-run=server", "-k", KUSTOMIZATION]);
    expect(dry.trim().split("\n").length).toBe(rendered.length);
    expect((await apps.listNamespacedDeployment({ namespace: NAMESPACE })).items).toEqual([]);
    // The examples are valid against the server too.
    await kubectlOk(["apply", "--dry-run=server", "-n", NAMESPACE, "-f", join(KUSTOMIZATION, "examples", "ingress.yaml")]);
    await kubectlOk(["apply", "--dry-run=server", "-n", NAMESPACE, "-f", join(KUSTOMIZATION, "examples", "allow-prometheus.yaml")]);
  }, 60_000);

  it("renders the external-Redis overlay without the StatefulSet, the registry's URL from a Secret", async () => {
    const overlay = loadAllYaml(await kubectlOk(["kustomize", join(KUSTOMIZATION, "examples", "external-redis")])) as KubeObject[];
    const names = overlay.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names).not.toContain("StatefulSet/clipper-redis");
    expect(names).not.toContain("Service/clipper-redis");
    expect(names).not.toContain("NetworkPolicy/clipper-redis");
    expect(names.length).toBe(rendered.length - 3);
    const registry = overlay.find((o) => o.kind === "Deployment" && o.metadata.name === "clipper-registry") as unknown as V1Deployment;
    const env = registry.spec?.template.spec?.containers[0]?.env ?? [];
    expect(env).toEqual([{ name: "CLIPPER_REDIS_URL", valueFrom: { secretKeyRef: { name: "clipper-external-redis", key: "url" } } }]);
  }, 60_000);

  it("meets the restricted Pod Security level with every pod it runs (the apiserver's admission decides)", async () => {
    const check = `restricted-check`;
    await kubectlOk(["create", "namespace", check]);
    await kubectlOk(["label", "namespace", check, "pod-security.kubernetes.io/enforce=restricted"]);
    // The pods' specs unchanged, so their ServiceAccount has to exist there too.
    await kubectlOk(["create", "serviceaccount", "-n", check, SERVICE_ACCOUNT]);
    for (const w of workloads()) {
      const spec = templateOf(w).spec;
      // A StatefulSet's claim templates become volumes of its pods: here emptyDirs of the same names.
      const claims = (w as V1StatefulSet).spec?.volumeClaimTemplates?.map((t) => ({ name: t.metadata?.name ?? "", emptyDir: {} })) ?? [];
      const podSpec = { ...spec, volumes: [...(spec?.volumes ?? []), ...claims] };
      const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: `${w.metadata?.name}-check`, namespace: check }, spec: podSpec };
      const result = await cluster.kubectl(["create", "--dry-run=server", "-f", "-"], { input: JSON.stringify(pod) });
      expect(result.code, `${w.metadata?.name}: ${result.stderr}`).toBe(0);
    }
    // The check can refuse: a pod without the securityContext is turned away.
    const bare = { apiVersion: "v1", kind: "Pod", metadata: { name: "bare", namespace: check }, spec: { containers: [{ name: "c", image: "x:1" }] } };
    const refused = await cluster.kubectl(["create", "--dry-run=server", "-f", "-"], { input: JSON.stringify(bare) });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('violates PodSecurity "restricted');
  }, 60_000);

  it("applies: the Deployments, the StatefulSet with its bound claim, Services with endpoints, PDBs, NetworkPolicies and RBAC are there; kwok runs the pods", async () => {
    // No storage provisioner here: a PersistentVolume for Redis's claim (the volume binder of the controller-manager binds it).
    await kubectlOk(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "PersistentVolume",
        metadata: { name: "clipper-redis-test" },
        spec: { capacity: { storage: "1Gi" }, accessModes: ["ReadWriteOnce"], storageClassName: "", hostPath: { path: "/nonexistent/kwok-runs-nothing" } },
      }),
    );
    await kubectlOk(["apply", "-k", KUSTOMIZATION]);

    const expected = { "clipper-registry": 1, "clipper-router": 2, "clipper-gateway": 2, "clipper-container-manager": 1 };
    await waitFor(
      "every Deployment and the StatefulSet ready",
      async () => {
        const deployments = (await apps.listNamespacedDeployment({ namespace: NAMESPACE })).items;
        const sets = (await apps.listNamespacedStatefulSet({ namespace: NAMESPACE })).items;
        const ready = Object.fromEntries(deployments.map((d) => [d.metadata?.name, d.status?.readyReplicas ?? 0]));
        return Object.entries(expected).every(([name, n]) => ready[name] === n) && sets[0]?.status?.readyReplicas === 1 ? true : undefined;
      },
      60_000,
    );
    const pods = (await core.listNamespacedPod({ namespace: NAMESPACE })).items;
    expect(pods.length).toBe(7);
    for (const pod of pods) {
      expect(pod.status?.phase, pod.metadata?.name).toBe("Running");
      expect(pod.status?.conditions?.find((c) => c.type === "Ready")?.status, pod.metadata?.name).toBe("True");
      const isManager = pod.metadata?.labels?.["app.kubernetes.io/name"] === "clipper-container-manager";
      expect(pod.spec?.serviceAccountName, pod.metadata?.name).toBe(isManager ? SERVICE_ACCOUNT : "default");
      expect(pod.spec?.automountServiceAccountToken ?? true, `${pod.metadata?.name}: only the container-manager gets a token`).toBe(isManager);
    }
    const claims = (await core.listNamespacedPersistentVolumeClaim({ namespace: NAMESPACE })).items;
    expect(claims.map((c) => [c.metadata?.name, c.status?.phase])).toEqual([["data-clipper-redis-0", "Bound"]]);

    // Each Service's selector finds its pods: the EndpointSlice controller lists them ready.
    const admin = new KubeConfig();
    admin.loadFromFile(cluster.kubeconfigPath);
    const discovery = admin.makeApiClient(DiscoveryV1Api);
    const servicePorts = {
      "clipper-gateway": [1337],
      "clipper-registry": [1338, 9338],
      "clipper-router": [1339, 9339],
      "clipper-container-manager": [1340, 9340, 1342],
      "clipper-redis": [6379],
    };
    const endpointsWanted = { "clipper-gateway": 2, "clipper-registry": 1, "clipper-router": 2, "clipper-container-manager": 1, "clipper-redis": 1 };
    for (const [service, ports] of Object.entries(servicePorts)) {
      const svc = await core.readNamespacedService({ name: service, namespace: NAMESPACE });
      expect(svc.spec?.ports?.map((p) => p.port)).toEqual(ports);
      await waitFor(
        `${service}'s EndpointSlice lists its ready pods`,
        async () => {
          const slices = (await discovery.listNamespacedEndpointSlice({ namespace: NAMESPACE, labelSelector: `kubernetes.io/service-name=${service}` })).items;
          const ready = slices.flatMap((s) => s.endpoints.filter((e) => e.conditions?.ready === true));
          return ready.length === endpointsWanted[service as keyof typeof endpointsWanted] ? true : undefined;
        },
        30_000,
      );
    }
    const policy = admin.makeApiClient(PolicyV1Api);
    await waitFor(
      "the PodDisruptionBudgets count their pods",
      async () => {
        const pdbs = (await policy.listNamespacedPodDisruptionBudget({ namespace: NAMESPACE })).items;
        const seen = pdbs.map((p) => [p.metadata?.name, p.status?.expectedPods, p.status?.disruptionsAllowed]).sort();
        return JSON.stringify(seen) ===
          JSON.stringify([
            ["clipper-gateway", 2, 1],
            ["clipper-router", 2, 1],
          ])
          ? true
          : undefined;
      },
      30_000,
    );
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    const role = await rbac.readNamespacedRole({ name: SERVICE_ACCOUNT, namespace: NAMESPACE });
    const grants = (role.rules ?? []).flatMap((r) =>
      (r.apiGroups ?? []).flatMap((g) => (r.resources ?? []).flatMap((res) => r.verbs.map((v) => `${g}/${res} ${v}`))),
    );
    expect(grants.sort()).toEqual([...ROLE_GRANTS].sort());
    const binding = await rbac.readNamespacedRoleBinding({ name: SERVICE_ACCOUNT, namespace: NAMESPACE });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: SERVICE_ACCOUNT, namespace: NAMESPACE }]);
    expect((await rbac.listClusterRoleBinding()).items.filter((b) => b.subjects?.some((s) => s.namespace === NAMESPACE))).toEqual([]);
    const networking = admin.makeApiClient(NetworkingV1Api);
    expect((await networking.listNamespacedNetworkPolicy({ namespace: NAMESPACE })).items.length).toBe(7);
  }, 120_000);

  it("admits from outside only the gateway's port, and inside only the callers of each service", async () => {
    const admin = new KubeConfig();
    admin.loadFromFile(cluster.kubeconfigPath);
    const policies = (await admin.makeApiClient(NetworkingV1Api).listNamespacedNetworkPolicy({ namespace: NAMESPACE })).items;
    const labelsOf = async (name: string) => {
      const pod = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `app.kubernetes.io/name=${name}` })).items[0];
      return pod?.metadata?.labels ?? {};
    };
    const pods = {
      gateway: await labelsOf("clipper-gateway"),
      router: await labelsOf("clipper-router"),
      registry: await labelsOf("clipper-registry"),
      manager: await labelsOf("clipper-container-manager"),
      redis: await labelsOf("clipper-redis"),
    };
    // A model pod as the backend labels them (checked against a real one in the next test).
    const model = { "app.kubernetes.io/name": "clipper-model", "app.kubernetes.io/managed-by": "clipper", "clipper.ai/cluster": "default" };
    const outside: Source = { outside: true };
    const from = (labels: Record<string, string>): Source => ({ pod: labels });
    const matrix: [string, Source, Record<string, string>, number, boolean][] = [
      ["outside → gateway:1337", outside, pods.gateway, 1337, true],
      ["outside → registry:1338", outside, pods.registry, 1338, false],
      ["outside → router:1339", outside, pods.router, 1339, false],
      ["outside → container-manager:1340", outside, pods.manager, 1340, false],
      ["outside → container-manager artifacts:1342", outside, pods.manager, 1342, false],
      ["outside → redis:6379", outside, pods.redis, 6379, false],
      ["outside → model:7000", outside, model, 7000, false],
      ["outside → registry metrics:9338", outside, pods.registry, 9338, false],
      ["gateway → router:1339", from(pods.gateway), pods.router, 1339, true],
      ["gateway → registry:1338", from(pods.gateway), pods.registry, 1338, true],
      ["router → registry:1338", from(pods.router), pods.registry, 1338, true],
      ["container-manager → registry:1338", from(pods.manager), pods.registry, 1338, true],
      ["router → model:7000", from(pods.router), model, 7000, true],
      ["gateway → model:7000", from(pods.gateway), model, 7000, true],
      ["gateway → container-manager:1340", from(pods.gateway), pods.manager, 1340, true],
      ["gateway → container-manager artifacts:1342", from(pods.gateway), pods.manager, 1342, false],
      ["router → container-manager artifacts:1342", from(pods.router), pods.manager, 1342, false],
      ["model → container-manager artifacts:1342", from(model), pods.manager, 1342, true],
      ["model → container-manager:1340", from(model), pods.manager, 1340, false],
      ["model → container-manager metrics:9340", from(model), pods.manager, 9340, false],
      ["registry → redis:6379", from(pods.registry), pods.redis, 6379, true],
      ["router → redis:6379", from(pods.router), pods.redis, 6379, false],
      ["registry → router:1339", from(pods.registry), pods.router, 1339, false],
      ["container-manager → model:7000", from(pods.manager), model, 7000, false],
      ["model → registry:1338", from(model), pods.registry, 1338, false],
      ["model → model:7000", from(model), model, 7000, false],
      ["gateway → router on another port", from(pods.gateway), pods.router, 9339, false],
    ];
    const verdicts = matrix.map(([what, source, target, port]) => [what, admits(policies, source, target, port)]);
    expect(verdicts).toEqual(matrix.map(([what, , , , allowed]) => [what, allowed]));
  });

  it("runs the container-manager under the ServiceAccount's token: deploy, scale, a clear error and delete work; the audit log shows exactly the Role's verbs; the rest is refused", async () => {
    const token = await cluster.createServiceAccountToken(NAMESPACE, SERVICE_ACCOUNT);
    const kubeconfig = cluster.writeKubeconfig({ token, namespace: NAMESPACE, user: SERVICE_ACCOUNT });
    // The manifest's own flags and image, minus what only makes sense in the pod (its address, the registry's Service name, its volume).
    const manager = containerOf("clipper-container-manager");
    const podOnly = new Set(["--host", "--port", "--metrics-port", "--registry", "--data-dir", "--artifacts-port", "--artifacts-url"]);
    const args: string[] = [];
    const manifestArgs = manager.args ?? [];
    for (let i = 0; i < manifestArgs.length; i += 2) {
      const [flag = "", value = ""] = manifestArgs.slice(i, i + 2);
      if (!podOnly.has(flag)) args.push(flag, value);
    }
    expect(args).toEqual(["--insecure", "true", "--backend", "kubernetes"]);
    const envOf = (name: string) => manager.env?.find((e) => e.name === name)?.value ?? "";
    expect(envOf("CLIPPER_CLUSTER_NAME")).toBe("default");
    args.push("--cluster-name", envOf("CLIPPER_CLUSTER_NAME"));
    const image = envOf("CLIPPER_MODEL_IMAGE");
    // Any free artifacts port: test files running at once must not share 1342 on this machine.
    const system = new TestSystem({ args: { "container-manager": [...args, "--image", image, "--kubeconfig", kubeconfig, "--artifacts-port", "0"] } });
    const node = cluster.nodeNames[0] ?? "";
    try {
      await system.startService("registry");
      await system.startService("container-manager");
      const readyInRegistryOf = async (model: string, version: string, n: number) => {
        const res = await system.management().listReplicas({ modelName: model, modelVersion: version });
        const ready = (res.replicaSets[0]?.replicas ?? []).filter((r) => r.state === ReplicaState.READY);
        return ready.length === n ? ready : undefined;
      };
      const readyInRegistry = (model: string, n: number) => readyInRegistryOf(model, "1", n);
      const modelDeployments = async () =>
        (await apps.listNamespacedDeployment({ namespace: NAMESPACE, labelSelector: "app.kubernetes.io/managed-by=clipper" })).items;

      await system.deploy({
        name: "sum",
        version: "1",
        inputType: InputType.DOUBLES,
        desiredReplicas: 2,
        runtime: { kind: { case: "command", value: { argv: ["/bin/model-server"] } } },
      });
      await waitFor("2 READY replicas in the registry", () => readyInRegistry("sum", 2), 30_000);
      const [deployment] = await modelDeployments();
      expect(deployment?.spec?.template.spec?.containers[0]?.image).toBe("clipper/model-runtime:0.1.0");
      // The model pods carry the labels the NetworkPolicies expect of them.
      const admin = new KubeConfig();
      admin.loadFromFile(cluster.kubeconfigPath);
      const policies = (await admin.makeApiClient(NetworkingV1Api).listNamespacedNetworkPolicy({ namespace: NAMESPACE })).items;
      const modelPod = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: "clipper.ai/model=sum" })).items[0];
      const routerPod = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: "app.kubernetes.io/name=clipper-router" })).items[0];
      expect(admits(policies, { pod: routerPod?.metadata?.labels ?? {} }, modelPod?.metadata?.labels ?? {}, DEFAULT_KUBERNETES_OPTIONS.containerPort)).toBe(
        true,
      );
      expect(admits(policies, { outside: true }, modelPod?.metadata?.labels ?? {}, DEFAULT_KUBERNETES_OPTIONS.containerPort)).toBe(false);
      // And reach the container-manager's artifact server, nothing else of it.
      const managerPod = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: "app.kubernetes.io/name=clipper-container-manager" })).items[0];
      const managerPorts = (managerPod?.spec?.containers[0]?.ports ?? []).map((p) => [
        p.name,
        admits(policies, { pod: modelPod?.metadata?.labels ?? {} }, managerPod?.metadata?.labels ?? {}, p.containerPort),
      ]);
      expect(managerPorts).toEqual([
        ["grpc", false],
        ["metrics", false],
        ["artifacts", true],
      ]);

      await system.containerManager().scaleModel({ name: "sum", version: "1", replicas: 1, timeoutSeconds: 30 });
      await waitFor("1 READY replica after scaling down", () => readyInRegistry("sum", 1), 30_000);
      // The pod stopped is reported gone before the backend's patch of spec.replicas may have landed.
      await waitFor("the Deployment patched to 1 replica", async () => ((await modelDeployments())[0]?.spec?.replicas === 1 ? true : undefined), 15_000);

      // A version switch: the new Deployment starts and becomes ready while the old version stays current; only then
      // does the registry's current version move; then the old one is scaled to 0, which deletes its Deployment.
      // The order is read from the registry's WatchConfig (changes in revision order), not by polling beside the stream.
      const watch = new AbortController();
      const changes: ConfigChange[] = [];
      let snapshot: ConfigSnapshot | undefined;
      const watching = (async () => {
        for await (const event of system.management().watchConfig({}, { signal: watch.signal })) {
          if (event.event.case === "snapshot") snapshot = event.event.value;
          if (event.event.case === "change" && changes.length < 10_000) changes.push(event.event.value);
        }
      })().catch((err: unknown) => {
        if (!watch.signal.aborted) throw err;
      });
      await system.deploy(
        {
          name: "sum",
          version: "2",
          inputType: InputType.DOUBLES,
          desiredReplicas: 2,
          runtime: { kind: { case: "command", value: { argv: ["/bin/model-server"] } } },
        },
        30,
      );
      await waitFor("the registry's change of sum's current version to 2", () =>
        changes.some((c) => c.change.case === "currentVersionSet" && c.change.value.modelName === "sum" && c.change.value.version === "2") ? true : undefined,
      );
      watch.abort();
      await watching;
      // READY replicas of a version in the registry just before change number `upTo` (from the snapshot, then the changes).
      const readyAt = (upTo: number, version: string) => {
        let replicas = snapshot?.replicaSets.find((r) => r.modelName === "sum" && r.modelVersion === version)?.replicas ?? [];
        for (const c of changes.slice(0, upTo)) {
          if (c.change.case === "replicasReported" && c.change.value.modelName === "sum" && c.change.value.modelVersion === version)
            replicas = c.change.value.replicas;
        }
        return replicas.filter((r) => r.state === ReplicaState.READY).length;
      };
      const switched = changes.findIndex((c) => c.change.case === "currentVersionSet" && c.change.value.version === "2");
      expect(readyAt(switched, "2"), "version 2's replicas READY before it became current").toBe(2);
      expect(readyAt(switched, "1"), "version 1 still serving when the current version moved").toBe(1);
      await system.containerManager().scaleModel({ name: "sum", version: "1", replicas: 0, timeoutSeconds: 30 });
      await waitFor(
        "the old version's Deployment deleted, the new one's kept",
        async () => {
          const left = await modelDeployments();
          return left.length === 1 && left[0]?.metadata?.labels?.["clipper.ai/version"] === "2" && left[0]?.status?.readyReplicas === 2 ? true : undefined;
        },
        30_000,
      );
      await waitFor("the registry lists 2 READY replicas of version 2", () => readyInRegistryOf("sum", "2", 2), 30_000);

      // A model whose pods cannot be scheduled (the node cordoned): a clear error naming the reason, from the pod and its events.
      await kubectlOk(["cordon", node]);
      const failure = await system
        .deploy(
          {
            name: "stuck",
            version: "1",
            inputType: InputType.DOUBLES,
            desiredReplicas: 1,
            runtime: { kind: { case: "command", value: { argv: ["/bin/model-server"] } } },
          },
          30,
        )
        .then(
          () => "deployed",
          (err: unknown) => String(err),
        );
      expect(failure).toMatch(/unschedulable/i);
      await kubectlOk(["uncordon", node]);

      await system.management().deleteModel({ name: "stuck", version: "1" });
      await system.management().deleteModel({ name: "sum", version: "1" });
      await system.management().deleteModel({ name: "sum", version: "2" });
      await waitFor("the model Deployments are gone", async () => ((await modelDeployments()).length === 0 ? true : undefined), 30_000);
      const errors = system.logs("container-manager").filter((l) => /"level":(50|60)/.test(l));
      expect(errors, "nothing logged as an error (a request the Role refused would be)").toEqual([]);
    } finally {
      await cluster.kubectl(["uncordon", node]);
      await system.stop();
    }

    // What the ServiceAccount did, from the apiserver's audit log: exactly the Role's grants, none refused.
    const events = readFileSync(join(auditDir, "audit.log"), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as AuditEvent)
      .filter((e) => e.user?.username === SA_USER && e.stage !== "ResponseStarted");
    expect(events.length).toBeGreaterThan(0);
    const refused = events.filter((e) => (e.responseStatus?.code ?? 0) === 403).map((e) => `${e.verb} ${e.requestURI}`);
    expect(refused, "requests the Role refused").toEqual([]);
    const used = new Set(
      events.map(
        (e) => `${e.objectRef?.apiGroup ?? ""}/${e.objectRef?.resource ?? "?"}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""} ${e.verb}`,
      ),
    );
    expect([...used].sort(), "the verbs used are exactly the Role's grants").toEqual([...ROLE_GRANTS].sort());
    expect(new Set(events.map((e) => e.objectRef?.namespace))).toEqual(new Set([NAMESPACE]));

    // Outside the Role: refused.
    const outsideRole: [string, string][] = [
      ["GET", `/api/v1/namespaces/${NAMESPACE}/secrets`],
      ["GET", `/api/v1/namespaces/${NAMESPACE}/configmaps`],
      ["GET", `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/clipper-registry`],
      ["GET", `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets`],
      ["GET", "/apis/apps/v1/namespaces/default/deployments"],
      ["GET", "/api/v1/pods"],
      ["GET", "/api/v1/nodes"],
      ["DELETE", `/apis/rbac.authorization.k8s.io/v1/namespaces/${NAMESPACE}/roles/${SERVICE_ACCOUNT}`],
    ];
    for (const [method, path] of outsideRole) {
      const res = await cluster.request(method, path, undefined, { token });
      expect(`${method} ${path}: ${res.status}`).toBe(`${method} ${path}: 403`);
    }
    // And inside it, allowed (the same token, so the 403s above are the Role's doing).
    const allowed = await cluster.request("GET", `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, undefined, { token });
    expect(allowed.status).toBe(200);
  }, 240_000);

  function containerOf(deployment: string): V1Container {
    const d = ofKind<V1Deployment>("Deployment").find((w) => w.metadata?.name === deployment);
    const c = d?.spec?.template.spec?.containers[0];
    if (c === undefined) throw new Error(`no Deployment ${deployment} in the rendered manifests`);
    return c;
  }
});
