/**
 * Services on the loopback cluster, for pods the loopback kubelet runs: what kube-proxy and cluster DNS do on a real
 * node (docs/kubernetes.md, "The data path on loopback"). Each Service of the watched namespace gets a loopback address
 * of its own (127.A.B.N; a ClusterIP from 10.96.0.0/24 routes nowhere here) with a TCP listener on each of its ports,
 * and a connection there is forwarded to one of the Service's ready endpoints (round robin, per connection, as
 * kube-proxy balances). The endpoints are the ready pods its selector matches, at the target port: what the
 * EndpointSlice controller computes, but read from the pods, because EndpointSlices refuse loopback addresses (the
 * apiserver's validation: "may not be in the loopback range"), so on loopback they stay empty. `resolve()` is the kubelet's `resolveHost`: a Service's DNS name in a pod of
 * that namespace → its address. Headless Services are proxied too (their DNS would give the pods' IPs; one address
 * forwarding to them is the same reach). Bounded: at most `maxServices` Services and `maxConnections` open connections.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { CoreV1Api, type KubeConfig, ListWatch, type V1Pod, type V1Service, Watch } from "@kubernetes/client-node";
import { readyEndpoints } from "../../cli/kubernetes-system.js";
import { AddressPool } from "./loopback-pod.js";

export interface LoopbackServiceProxyOptions {
  /** An identity that may list and watch Services and pods in `namespace` (the test's admin). */
  kubeConfig: KubeConfig;
  namespace: string;
  maxServices?: number;
  maxConnections?: number;
  log?: (line: string) => void;
}

export const LOOPBACK_SERVICE_PROXY_DEFAULTS = { maxServices: 32, maxConnections: 512 } as const;

interface ProxiedService {
  name: string;
  address: string;
  selector: Record<string, string>;
  listeners: Server[];
  /** The next endpoint to pick. */
  turn: number;
}

export class LoopbackServiceProxy {
  private readonly o: Required<LoopbackServiceProxyOptions>;
  private readonly services = new Map<string, ProxiedService>();
  private readonly pods = new Map<string, V1Pod>();
  private readonly addresses: AddressPool;
  private readonly sockets = new Set<Socket>();
  private informers: ListWatch<V1Service | V1Pod>[] = [];
  private closed = false;

  constructor(options: LoopbackServiceProxyOptions) {
    this.o = { ...LOOPBACK_SERVICE_PROXY_DEFAULTS, log: () => {}, ...options };
    this.addresses = new AddressPool(this.o.maxServices, undefined, 200 - this.o.maxServices);
  }

  /** Lists and watches the namespace's Services and pods; resolves once both lists are in. */
  async start(): Promise<void> {
    const ns = this.o.namespace;
    const core = this.o.kubeConfig.makeApiClient(CoreV1Api);
    const watch = new Watch(this.o.kubeConfig);
    const services = new ListWatch<V1Service>(`/api/v1/namespaces/${ns}/services`, watch, () => core.listNamespacedService({ namespace: ns }), false);
    services.on("add", (s) => void this.serviceAdded(s));
    services.on("delete", (s) => void this.serviceDeleted(s.metadata?.name ?? ""));
    const pods = new ListWatch<V1Pod>(`/api/v1/namespaces/${ns}/pods`, watch, () => core.listNamespacedPod({ namespace: ns }), false);
    const keep = (p: V1Pod) => this.pods.set(p.metadata?.name ?? "", p);
    pods.on("add", keep);
    pods.on("update", keep);
    pods.on("delete", (p) => this.pods.delete(p.metadata?.name ?? ""));
    const informers = [services, pods] as ListWatch<V1Service | V1Pod>[];
    for (const informer of informers) {
      informer.on("error", (err: unknown) => {
        if (this.closed) return;
        this.o.log(`service proxy watch failed, restarting in 1 s: ${String(err)}`);
        setTimeout(() => {
          if (!this.closed) informer.start().catch(() => {});
        }, 1_000).unref();
      });
    }
    this.informers = informers;
    await Promise.all(informers.map((i) => i.start()));
  }

  /** The address of the Service a pod of `namespace` names `host` (`name`, `name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local`). */
  resolve(namespace: string, host: string): string | undefined {
    if (namespace !== this.o.namespace) return undefined;
    const [name, ns, ...rest] = host.split(".");
    if (ns !== undefined && ns !== namespace) return undefined;
    if (rest.length > 0 && rest.join(".") !== "svc" && rest.join(".") !== "svc.cluster.local") return undefined;
    return this.services.get(name ?? "")?.address;
  }

  /** Every Service proxied: its name and address. */
  list(): { name: string; address: string }[] {
    return [...this.services.values()].map((s) => ({ name: s.name, address: s.address }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.informers.map((i) => i.stop()));
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([...this.services.keys()].map((name) => this.serviceDeleted(name)));
  }

  private async serviceAdded(service: V1Service): Promise<void> {
    const name = service.metadata?.name ?? "";
    if (this.closed || this.services.has(name)) return;
    // Reserved before the first await, so a pod admitted meanwhile already resolves the name.
    const proxied: ProxiedService = { name, address: "", selector: service.spec?.selector ?? {}, listeners: [], turn: 0 };
    this.services.set(name, proxied);
    const address = await this.addresses.take(async () => true);
    if (address === undefined) {
      this.o.log(`service ${name}: not proxied, more than ${this.o.maxServices} Services`);
      this.services.delete(name);
      return;
    }
    proxied.address = address;
    for (const port of service.spec?.ports ?? []) {
      const targetPort = port.targetPort ?? port.port;
      const server = createServer((socket) => this.forward(proxied, targetPort, socket));
      proxied.listeners.push(server);
      await new Promise<void>((resolve) => {
        server.once("error", (err) => {
          this.o.log(`service ${name}: cannot listen on ${address}:${port.port}: ${err.message}`);
          resolve();
        });
        server.listen({ host: address, port: port.port, exclusive: true }, resolve);
      });
    }
    this.o.log(`service ${name} on ${address}`);
  }

  private serviceDeleted(name: string): Promise<void> {
    const proxied = this.services.get(name);
    if (proxied === undefined) return Promise.resolve();
    this.services.delete(name);
    if (proxied.address !== "") this.addresses.release(proxied.address);
    return Promise.all(proxied.listeners.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))).then(() => {});
  }

  private forward(service: ProxiedService, targetPort: number | string, client: Socket): void {
    const ready = readyEndpoints(service.selector, targetPort, [...this.pods.values()]);
    const target = ready[service.turn++ % Math.max(1, ready.length)];
    if (target === undefined || this.sockets.size + 2 > this.o.maxConnections) {
      // No ready endpoint: refused, as kube-proxy rejects a Service without endpoints.
      client.destroy();
      return;
    }
    const colon = target.lastIndexOf(":");
    const upstream = tcpConnect({ host: target.slice(0, colon).replace(/^\[|\]$/g, ""), port: Number(target.slice(colon + 1)) });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }
}
