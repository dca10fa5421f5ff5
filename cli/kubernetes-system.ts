/**
 * A Clipper system on Kubernetes, as the CLI finds it with `--kubeconfig FILE [--namespace NS] [--cluster NAME]`:
 * the services deploy/kubernetes runs in the namespace (applied by Python's KubernetesContainerManager or by
 * `kubectl apply -k`), reached at the ready endpoints of their Services (named by the cluster name: objectName), and
 * the state of the system's Deployments and pods for `clipper status`. Python's clipper_admin.kubernetes_container_manager finds them the same way
 * (docs/kubernetes.md, "From Python and the CLI").
 */
import { AppsV1Api, CoreV1Api, KubeConfig, type V1Deployment, type V1Pod } from "@kubernetes/client-node";
import type { ServiceAddresses } from "./addresses.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_CLUSTER } from "./clusters.js";
import { formatTable, indent, type Output } from "./output.js";

export const KUBERNETES_DEFAULTS = {
  namespace: "clipper",
  /** Bound on each apiserver call. */
  requestTimeoutMs: 15_000,
} as const;

/** The label deploy/kubernetes's objects get for a cluster name (Python's start_clipper), which the model Deployments also carry. */
export const CLUSTER_LABEL = "clipper.ai/cluster";

/**
 * The name deploy/kubernetes's object `name` has for a cluster name: "default" keeps the manifests' names, any other
 * prefixes them with `<cluster>-` (Python's start_clipper, kubernetes_container_manager.object_name: several systems in
 * one namespace).
 */
export function objectName(cluster: string, name: string): string {
  return cluster === DEFAULT_CLUSTER ? name : `${cluster}-${name}`;
}

/** The Services of deploy/kubernetes (named for the "default" cluster) and the port each client uses. */
const SERVICES = {
  registry: { service: "clipper-registry", port: "grpc" },
  containerManager: { service: "clipper-container-manager", port: "grpc" },
  gateway: { service: "clipper-gateway", port: "http" },
} as const;

export interface KubernetesTarget {
  kubeconfig: string;
  namespace: string;
  /** The Clipper cluster name in that namespace (--cluster). */
  cluster: string;
}

/** The ready pods a Service's selector matches (not being deleted), at the port's targetPort: what its EndpointSlices list. */
export function readyEndpoints(selector: Record<string, string>, targetPort: number | string, pods: readonly V1Pod[]): string[] {
  const wanted = Object.entries(selector);
  if (wanted.length === 0) return [];
  const out: string[] = [];
  for (const pod of pods) {
    const labels = pod.metadata?.labels ?? {};
    if (!wanted.every(([k, v]) => labels[k] === v) || pod.metadata?.deletionTimestamp !== undefined) continue;
    const ip = pod.status?.podIP;
    if (ip === undefined || !pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) continue;
    const port =
      typeof targetPort === "number" ? targetPort : pod.spec?.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === targetPort)?.containerPort;
    if (port !== undefined) out.push(ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`);
  }
  return out.sort();
}

export class KubernetesSystem {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;

  constructor(readonly target: KubernetesTarget) {
    const config = new KubeConfig();
    try {
      config.loadFromFile(target.kubeconfig);
    } catch (err) {
      throw new CliError(`cannot read kubeconfig ${target.kubeconfig}: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.core = config.makeApiClient(CoreV1Api);
    this.apps = config.makeApiClient(AppsV1Api);
  }

  /**
   * Each service's address: the flag when given, else the first ready endpoint of its Service. Resolved up front (the
   * apiserver is asked once); a service without one fails only the command that needs it, with what to do.
   */
  async addresses(flags: Record<keyof ServiceAddresses, string | undefined>): Promise<ServiceAddresses> {
    const { namespace, cluster } = this.target;
    const pods = this.core.listNamespacedPod({ namespace }).then((r) => r.items);
    const resolve = async (name: keyof ServiceAddresses): Promise<string | CliError> => {
      const given = flags[name];
      if (given !== undefined) return given;
      const service = objectName(cluster, SERVICES[name].service);
      const { port } = SERVICES[name];
      const found = await this.core.readNamespacedService({ name: service, namespace }).catch((err: unknown) => {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      });
      const servicePort = found?.spec?.ports?.find((p) => (p.name ?? "") === port);
      const ready = servicePort === undefined ? [] : readyEndpoints(found?.spec?.selector ?? {}, servicePort.targetPort ?? servicePort.port, await pods);
      return (
        ready[0] ??
        new CliError(
          `Service ${service} in namespace ${namespace} has ${found === undefined ? "not been created" : "no ready endpoint"}: is Clipper${cluster === DEFAULT_CLUSTER ? "" : ` cluster ${cluster}`} running there? ` +
            `From outside the cluster's network, give --${name === "containerManager" ? "container-manager" : name} (a LoadBalancer, or kubectl -n ${namespace} port-forward service/${service} ...)`,
        )
      );
    };
    const [registry, containerManager, gateway] = await this.call("find the services", () =>
      Promise.all([resolve("registry"), resolve("containerManager"), resolve("gateway")]),
    );
    const value = (v: string | CliError | undefined) => {
      if (v instanceof CliError) throw v;
      return v as string;
    };
    return {
      get registry() {
        return value(registry);
      },
      get containerManager() {
        return value(containerManager);
      },
      get gateway() {
        return value(gateway);
      },
    };
  }

  /** `clipper status`'s services part: the system's Deployments of this cluster name, and the model Deployments'. */
  async writeStatus(out: Output): Promise<void> {
    const { namespace, cluster } = this.target;
    const labelSelector = `${CLUSTER_LABEL}=${cluster}`;
    const [deployments, pods] = await this.call("read the system's Deployments and pods", () =>
      Promise.all([
        this.apps.listNamespacedDeployment({ namespace, labelSelector }).then((r) => r.items),
        this.core.listNamespacedPod({ namespace, labelSelector }).then((r) => r.items),
      ]),
    );
    out.write(`services (Kubernetes: namespace ${namespace}, cluster ${cluster}, kubeconfig ${this.target.kubeconfig}):\n`);
    if (deployments.length === 0) {
      out.write(`  none: nothing in namespace ${namespace} is labelled ${labelSelector}\n`);
      return;
    }
    const row = (d: V1Deployment) => {
      const name = d.metadata?.name ?? "";
      const ready = d.status?.readyReplicas ?? 0;
      const desired = d.spec?.replicas ?? 0;
      const selector = Object.entries(d.spec?.selector.matchLabels ?? {});
      const own = pods.filter((p) => selector.length > 0 && selector.every(([k, v]) => p.metadata?.labels?.[k] === v));
      const restarts = own.reduce((n, p) => n + (p.status?.containerStatuses ?? []).reduce((m, c) => m + c.restartCount, 0), 0);
      const ips = own.map((p) => p.status?.podIP ?? "-").sort();
      return [name, ready >= desired && desired > 0 ? "up" : ready > 0 ? "degraded" : "down", `${ready}/${desired}`, String(restarts), ips.join(",")];
    };
    const sorted = [...deployments].sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
    out.write(indent(formatTable(["DEPLOYMENT", "STATE", "READY", "RESTARTS", "POD IPS"], sorted.map(row))));
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CliError(`the apiserver did not answer within ${KUBERNETES_DEFAULTS.requestTimeoutMs} ms (${what})`)),
        KUBERNETES_DEFAULTS.requestTimeoutMs,
      );
    });
    try {
      return await Promise.race([run(), timeout]);
    } catch (err) {
      if (err instanceof CliError) throw err;
      const code = (err as { code?: number }).code;
      throw new CliError(
        `cannot ${what} in namespace ${this.target.namespace}${code === undefined ? "" : ` (HTTP ${code})`}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The target when --kubeconfig (or $CLIPPER_KUBECONFIG) is given, else undefined (a system on this machine). */
export function kubernetesTarget(
  values: Record<string, string | boolean | undefined>,
  env: Record<string, string | undefined>,
  cluster: string,
): KubernetesTarget | undefined {
  const kubeconfig = typeof values.kubeconfig === "string" ? values.kubeconfig : env.CLIPPER_KUBECONFIG || undefined;
  const namespace = typeof values.namespace === "string" ? values.namespace : env.CLIPPER_NAMESPACE || KUBERNETES_DEFAULTS.namespace;
  if (kubeconfig === undefined) {
    if (typeof values.namespace === "string") throw new Error("--namespace is for a system on Kubernetes: give --kubeconfig too");
    return undefined;
  }
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace))
    throw new Error(`namespace "${namespace}" is not valid: a DNS label (1 to 63 lowercase letters, digits and "-")`);
  return { kubeconfig, namespace, cluster: cluster || DEFAULT_CLUSTER };
}
