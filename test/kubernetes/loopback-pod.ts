/**
 * How the loopback kubelet (loopback-kubelet.ts) runs a pod's container on this machine and what it
 * reports of it, as pure functions and small classes: the container's command, env and working dir
 * with the image's paths and Services' names mapped, its readiness probe, and the pod's status.
 * Unit-tested in loopback-pod.test.ts.
 */
import { join } from "node:path";
import type { V1Container, V1ContainerPort, V1ContainerStatus, V1Pod, V1PodCondition, V1Probe } from "@kubernetes/client-node";

/** Kubernetes' probe defaults. */
export const PROBE_DEFAULTS = { periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 1, initialDelaySeconds: 0 } as const;

/** `value` with each `:`-separated path under a mapped prefix moved to its directory here. */
export function mapPaths(value: string, pathMap: Record<string, string>): string {
  const prefixes = Object.keys(pathMap).sort((a, b) => b.length - a.length);
  return value
    .split(":")
    .map((segment) => {
      const prefix = prefixes.find((p) => segment === p || segment.startsWith(`${p}/`));
      return prefix === undefined ? segment : `${pathMap[prefix]}${segment.slice(prefix.length)}`;
    })
    .join(":");
}

/** The kubelet's `$(VAR)` expansion in command and args: a defined variable is replaced, `$$(VAR)` is a literal `$(VAR)`. */
export function expandVariables(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return "$";
    return env[name] ?? match;
  });
}

/** What a readiness probe does, its named port resolved: a grpc.health.v1 Check, an HTTP GET (200-399 is ready), a TCP connect. */
export type ProbeAction = { kind: "grpc"; port: number; service: string } | { kind: "http"; port: number; path: string } | { kind: "tcp"; port: number };

/** What the readiness check does, with Kubernetes' defaults filled in. */
export interface ReadinessCheck {
  /** undefined: no readinessProbe, the container is ready once running. */
  action: ProbeAction | undefined;
  periodMs: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
  initialDelayMs: number;
}

/** The readiness check of a container (named ports looked up in `ports`), or the reason it cannot be run here. */
export function readinessCheck(probe: V1Probe | undefined, ports: readonly V1ContainerPort[] = []): ReadinessCheck | string {
  const d = PROBE_DEFAULTS;
  const timing = {
    periodMs: (probe?.periodSeconds ?? d.periodSeconds) * 1000,
    timeoutMs: (probe?.timeoutSeconds ?? d.timeoutSeconds) * 1000,
    failureThreshold: probe?.failureThreshold ?? d.failureThreshold,
    successThreshold: probe?.successThreshold ?? d.successThreshold,
    initialDelayMs: (probe?.initialDelaySeconds ?? d.initialDelaySeconds) * 1000,
  };
  if (probe === undefined) return { action: undefined, ...timing };
  const port = (p: number | string): number | string => {
    if (typeof p === "number") return p;
    return ports.find((c) => c.name === p)?.containerPort ?? `the probe's port "${p}" is no port of the container`;
  };
  const action = (): ProbeAction | string => {
    if (probe.grpc !== undefined) return { kind: "grpc", port: probe.grpc.port, service: probe.grpc.service ?? "" };
    if (probe.httpGet !== undefined) {
      if ((probe.httpGet.scheme ?? "HTTP") !== "HTTP") return "the loopback kubelet runs HTTP probes, not HTTPS";
      const p = port(probe.httpGet.port);
      return typeof p === "string" ? p : { kind: "http", port: p, path: probe.httpGet.path ?? "/" };
    }
    if (probe.tcpSocket !== undefined) {
      const p = port(probe.tcpSocket.port);
      return typeof p === "string" ? p : { kind: "tcp", port: p };
    }
    return "the loopback kubelet runs gRPC, HTTP and TCP readiness probes (no exec: there is no image to run it in)";
  };
  const a = action();
  return typeof a === "string" ? a : { action: a, ...timing };
}

/** ConfigMaps' and Secrets' data (Secrets decoded) in the pod's namespace, for its envFrom and valueFrom. */
export interface EnvSources {
  configMaps: Record<string, Record<string, string>>;
  secrets: Record<string, Record<string, string>>;
}

/** The names of the ConfigMaps and Secrets a container's env reads. */
export function envSourceNames(c: V1Container): { configMaps: string[]; secrets: string[] } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const e of c.envFrom ?? []) {
    if (e.configMapRef?.name !== undefined) configMaps.add(e.configMapRef.name);
    if (e.secretRef?.name !== undefined) secrets.add(e.secretRef.name);
  }
  for (const e of c.env ?? []) {
    if (e.valueFrom?.configMapKeyRef?.name !== undefined) configMaps.add(e.valueFrom.configMapKeyRef.name);
    if (e.valueFrom?.secretKeyRef?.name !== undefined) secrets.add(e.valueFrom.secretKeyRef.name);
  }
  return { configMaps: [...configMaps], secrets: [...secrets] };
}

/**
 * What a pod's network namespace and cluster DNS give a process, on loopback: a wildcard bind (`0.0.0.0`) is the pod's
 * own address, and a Service's name before `:port` (in `host:port`, `scheme://host:port`, `user@host:port`) is the
 * address `resolveHost` gives it.
 */
export function mapHosts(value: string, address: string, resolveHost: ((host: string) => string | undefined) | undefined): string {
  if (value === "0.0.0.0") return address;
  if (resolveHost === undefined) return value;
  return value.replace(/(^|\/\/|@)([a-z0-9][-a-z0-9.]*)(?=:\d)/g, (match, before: string, host: string) => {
    const resolved = resolveHost(host);
    return resolved === undefined ? match : `${before}${resolved}`;
  });
}

/** How the container runs here. */
export interface LocalProcess {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string | undefined;
  /** The container port the pod's readiness probe checks (and the address's port that must be free). */
  readiness: ReadinessCheck;
}

/**
 * The local process of a pod's container on `address`, or the reason the pod cannot run here (reported as
 * CreateContainerConfigError). The pod's env over `baseEnv`, CLIPPER_MODEL_HOST set to the pod's address (the runtimes
 * bind it), downward-API fields the pod asks for, image paths mapped, `$(VAR)` expanded in command and args.
 */
export function localProcess(
  pod: V1Pod,
  address: string,
  options: {
    /** Image path prefix → directory here (LoopbackKubeletOptions.pathMap). */
    pathMap: Record<string, string>;
    /** A container command → the executable here (LoopbackKubeletOptions.commandMap). */
    commandMap?: Record<string, string> | undefined;
    baseEnv: Record<string, string>;
    nodeName: string;
    /** The data of the ConfigMaps and Secrets its env reads (a missing one: the pod cannot start, as with the kubelet). */
    sources?: EnvSources | undefined;
    /** Cluster DNS in the pod's namespace (LoopbackKubeletOptions.resolveHost). */
    resolveHost?: ((host: string) => string | undefined) | undefined;
    /** A kubeconfig for the pod's ServiceAccount token: KUBECONFIG, in place of the in-cluster mount (the clients read fixed paths). */
    serviceAccountKubeconfig?: string | undefined;
    /** The pod's emptyDir volumes' directories here, by volume name: their mountPaths map to them. */
    emptyDirs?: Record<string, string> | undefined;
  },
): LocalProcess | string {
  const containers = pod.spec?.containers ?? [];
  if (containers.length !== 1) return `the loopback kubelet runs pods of exactly one container, this one has ${containers.length}`;
  if ((pod.spec?.initContainers ?? []).length > 0) return "the loopback kubelet runs no init containers";
  const c = containers[0] as V1Container;
  const mounts: Record<string, string> = {};
  for (const m of c.volumeMounts ?? []) {
    const dir = options.emptyDirs?.[m.name];
    if (dir !== undefined) mounts[m.mountPath] = m.subPath ? join(dir, m.subPath) : dir;
  }
  const pathMap = { ...options.pathMap, ...mounts };
  if ((c.command ?? []).length === 0) return `container ${c.name} has no command: the loopback kubelet knows no image's entrypoint`;
  const readiness = readinessCheck(c.readinessProbe, c.ports);
  if (typeof readiness === "string") return `container ${c.name}: ${readiness}`;
  const fields: Record<string, string | undefined> = {
    "metadata.name": pod.metadata?.name,
    "metadata.namespace": pod.metadata?.namespace,
    "metadata.uid": pod.metadata?.uid,
    "spec.nodeName": options.nodeName,
    "status.podIP": address,
    "status.hostIP": "127.0.0.1",
  };
  const env: Record<string, string> = { ...options.baseEnv };
  if (options.serviceAccountKubeconfig !== undefined) env.KUBECONFIG = options.serviceAccountKubeconfig;
  const sources = options.sources ?? { configMaps: {}, secrets: {} };
  for (const e of c.envFrom ?? []) {
    const [kind, name] = e.configMapRef !== undefined ? ["configmap", e.configMapRef.name ?? ""] : ["secret", e.secretRef?.name ?? ""];
    const data = (kind === "configmap" ? sources.configMaps : sources.secrets)[name];
    if (data === undefined) return `container ${c.name}: envFrom ${kind} "${name}" not found`;
    for (const [key, value] of Object.entries(data)) env[`${e.prefix ?? ""}${key}`] = value;
  }
  for (const e of c.env ?? []) {
    if (e.valueFrom !== undefined) {
      const path = e.valueFrom.fieldRef?.fieldPath;
      const ref = e.valueFrom.configMapKeyRef ?? e.valueFrom.secretKeyRef;
      const store = e.valueFrom.configMapKeyRef !== undefined ? sources.configMaps : sources.secrets;
      const value = path !== undefined ? fields[path] : ref !== undefined ? store[ref.name ?? ""]?.[ref.key] : undefined;
      if (value === undefined && ref !== undefined) return `container ${c.name}: env ${e.name}: key "${ref.key}" of "${ref.name}" not found`;
      if (value === undefined) {
        return `container ${c.name}: env ${e.name}: the loopback kubelet resolves only fieldRef of ${Object.keys(fields).join(", ")}, configMapKeyRef and secretKeyRef`;
      }
      env[e.name] = value;
    } else {
      env[e.name] = mapPaths(expandVariables(e.value ?? "", env), pathMap);
    }
  }
  for (const [key, value] of Object.entries(env)) env[key] = mapHosts(value, address, options.resolveHost);
  // The runtimes bind CLIPPER_MODEL_HOST: the pod's own address, as a pod's network namespace would give it.
  env.CLIPPER_MODEL_HOST = address;
  const expand = (v: string) => mapHosts(mapPaths(expandVariables(v, env), pathMap), address, options.resolveHost);
  const [first, ...rest] = [...(c.command ?? []), ...(c.args ?? [])].map(expand);
  const command = options.commandMap?.[first ?? ""] ?? first ?? "";
  return { command, args: rest, env, cwd: c.workingDir !== undefined ? expand(c.workingDir) : undefined, readiness };
}

/** Addresses 127.A.B.first .. first+size-1 (A, B random per agent, so two agents on one machine rarely meet; a taken port is skipped anyway). */
export class AddressPool {
  private readonly free: string[];
  private readonly taken = new Set<string>();

  constructor(size: number, octets: [number, number] = [1 + Math.floor(Math.random() * 254), 1 + Math.floor(Math.random() * 254)], first = 2) {
    if (size < 1 || first + size > 255) throw new Error(`an address pool of ${size} from .${first} does not fit in 127.${octets[0]}.${octets[1]}.0/24`);
    this.free = Array.from({ length: size }, (_, i) => `127.${octets[0]}.${octets[1]}.${first + i}`);
  }

  /** The first free address `usable` accepts, or undefined when none is left. */
  async take(usable: (address: string) => Promise<boolean>): Promise<string | undefined> {
    for (const address of [...this.free]) {
      if (!(await usable(address))) continue;
      this.free.splice(this.free.indexOf(address), 1);
      this.taken.add(address);
      return address;
    }
    return undefined;
  }

  release(address: string): void {
    if (this.taken.delete(address)) this.free.push(address);
  }
}

/** What a container is doing, as the agent tracks it. */
export type ContainerPhase =
  | { kind: "running"; startedAt: Date }
  | { kind: "backoff"; message: string }
  | { kind: "exited"; exitCode: number; finishedAt: Date }
  | { kind: "config-error"; message: string };

export interface LastTermination {
  exitCode: number;
  signal: string | undefined;
  startedAt: Date;
  finishedAt: Date;
  message: string;
}

/** The pod's status as this node reports it: phase, IPs, conditions, the container's state, readiness and restarts. */
export function podStatus(s: {
  pod: V1Pod;
  address: string | undefined;
  container: ContainerPhase;
  ready: boolean;
  restarts: number;
  last: LastTermination | undefined;
  startTime: Date;
}): NonNullable<V1Pod["status"]> {
  const c = s.pod.spec?.containers[0];
  const name = c?.name ?? "container";
  const now = new Date();
  const phase =
    s.container.kind === "config-error"
      ? "Pending"
      : s.container.kind === "exited"
        ? s.container.exitCode === 0
          ? "Succeeded"
          : "Failed"
        : s.container.kind === "backoff" && s.restarts === 0
          ? "Pending"
          : "Running";
  const ready = s.ready && s.container.kind === "running";
  const notReady = ready ? undefined : "ContainersNotReady";
  const condition = (type: string, status: boolean, reason?: string): V1PodCondition => ({
    type,
    status: status ? "True" : "False",
    lastTransitionTime: now,
    ...(reason !== undefined && !status ? { reason } : {}),
  });
  const state: V1ContainerStatus["state"] =
    s.container.kind === "running"
      ? { running: { startedAt: s.container.startedAt } }
      : s.container.kind === "exited"
        ? { terminated: { exitCode: s.container.exitCode, finishedAt: s.container.finishedAt, reason: s.container.exitCode === 0 ? "Completed" : "Error" } }
        : {
            waiting:
              s.container.kind === "backoff"
                ? { reason: "CrashLoopBackOff", message: s.container.message }
                : { reason: "CreateContainerConfigError", message: s.container.message },
          };
  const containerStatus: V1ContainerStatus = {
    name,
    image: c?.image ?? "",
    imageID: "",
    ready,
    started: s.container.kind === "running",
    restartCount: s.restarts,
    state,
    ...(s.last !== undefined
      ? {
          lastState: {
            terminated: {
              exitCode: s.last.exitCode,
              ...(s.last.signal !== undefined ? { signal: signalNumber(s.last.signal) } : {}),
              reason: s.last.exitCode === 0 ? "Completed" : "Error",
              startedAt: s.last.startedAt,
              finishedAt: s.last.finishedAt,
              message: s.last.message,
            },
          },
        }
      : {}),
  };
  return {
    phase,
    hostIP: "127.0.0.1",
    hostIPs: [{ ip: "127.0.0.1" }],
    ...(s.address !== undefined && phase !== "Pending" ? { podIP: s.address, podIPs: [{ ip: s.address }] } : {}),
    startTime: s.startTime,
    conditions: [
      condition("PodReadyToStartContainers", s.container.kind !== "config-error"),
      condition("Initialized", true),
      condition("Ready", ready, notReady),
      condition("ContainersReady", ready, notReady),
      condition("PodScheduled", true),
    ],
    containerStatuses: [containerStatus],
    qosClass: s.pod.status?.qosClass ?? "BestEffort",
  };
}

/** A signal's number, as the kubelet reports a terminated container's. */
export function signalNumber(signal: string): number {
  return { SIGTERM: 15, SIGKILL: 9, SIGSEGV: 11, SIGABRT: 6, SIGINT: 2 }[signal] ?? 0;
}

/** Keeps the last `size` lines. */
export class LineRing {
  private readonly lines: string[] = [];
  constructor(private readonly size: number) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.size) this.lines.shift();
  }
  last(n = this.size): string[] {
    return this.lines.slice(-n);
  }
  /** The last lines, at most `bytes` of them (the end kept). */
  tail(bytes: number): string {
    const text = this.lines.join("\n");
    return text.length <= bytes ? text : text.slice(text.length - bytes);
  }
}
