import http from "node:http";
import type net from "node:net";
import { type Client, createClient, createRouterTransport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { PredictionService } from "../../gen/clipper/v1/prediction_service_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { inProcessRouterConfig, routerCoreSettings } from "../router/config.js";
import { createRouterCore } from "../router/router.js";
import { queryResults } from "../router/service.js";
import type { ClientSecurity } from "../shared/index.js";
import { ConnectError, createGrpcTransport, type Logger, type prom, registration, startGrpcServer, watchConfig } from "../shared/index.js";
import { type AppKeys, restKeyGuard, withAppKeys } from "./app-keys.js";
import { GatewayMetrics } from "./gateway-metrics.js";
import { createSniffingListener } from "./h2c-sniffing-listener.js";
import { Predictor } from "./predictor.js";
import { createRestHandler, type Readiness } from "./rest-handler.js";
import { type QueryRouter, RouterStream, unaryQueryRouter } from "./router-stream.js";
import { createPredictionServiceImpl } from "./service.js";
import { createTlsAlpnListener } from "./tls-alpn-listener.js";

export interface GatewayOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** host:port of the router's QueryService, or IN_PROCESS to run the router inside the gateway. */
  router: string;
  /** host:port of the registry. */
  registry: string;
  /** Largest request body (REST, Connect, gRPC-Web) or gRPC message accepted. */
  maxBodyBytes: number;
  /** Accept REST numeric batches whose inputs differ in length. */
  allowRaggedBatch: boolean;
  /** The router call's deadline when the caller sets none. */
  queryTimeoutMs: number;
  /** Queries answered at once; more are shed with RESOURCE_EXHAUSTED / HTTP 429. */
  maxInFlight: number;
  /** How queries reach the router: multiplexed on one QueryStream (default), or one unary Query call each. */
  routerCalls?: RouterCalls;
  /** On close, how long requests already being answered get to finish before their connections are cut (default 5000). */
  drainMs?: number;
  logger: Logger;
  metrics: prom.Registry;
  /** In a --workers gateway: this worker's id, sent as `x-clipper-worker` on HTTP/1.1 answers (which process answered). */
  workerId?: number;
  /** The /metrics text when it is not just `metrics`' (a worker of a --workers gateway answers the sum over all workers). */
  metricsText?: () => Promise<string>;
  /** Upper bounds (seconds) of the request latency histogram. */
  latencyBuckets?: readonly number[];
  /** Serve HTTPS and gRPC over TLS on the port instead of cleartext. */
  tls?: { cert: Buffer; key: Buffer };
  /** Per-application prediction keys; without them predictions are open. */
  appKeys?: AppKeys;
  /** TLS and token for the router and the registry. */
  routerSecurity?: ClientSecurity;
  registrySecurity?: ClientSecurity;
}

/** The `--router` value that runs the router inside the gateway's process. */
export const IN_PROCESS = "in-process";

export const ROUTER_CALLS = ["stream", "unary"] as const;
export type RouterCalls = (typeof ROUTER_CALLS)[number];

export interface RunningGateway {
  readonly port: number;
  close(): Promise<void>;
}

const SERVICE_PREFIX = `/${PredictionService.typeName}/`;

/**
 * The public edge on one port: HTTP/1.1 (Clipper's REST, Connect, gRPC-Web)
 * and gRPC over h2c, told apart by the HTTP/2 preface.
 */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const watcher = watchConfig({
    registry: options.registry,
    logger: options.logger,
    ...(options.registrySecurity ? { security: options.registrySecurity } : {}),
  });
  const router = options.router === IN_PROCESS ? inProcessRouter(options) : remoteRouter(options);
  const predictor = new Predictor(() => watcher.current(), router.client, router.query, options.queryTimeoutMs, options.maxInFlight);
  const metrics = new GatewayMetrics(options.metrics, options.latencyBuckets);
  const openImpl = createPredictionServiceImpl(predictor, metrics);
  const impl = options.appKeys ? withAppKeys(openImpl, options.appKeys) : openImpl;

  const readiness = async (): Promise<Readiness> => {
    if (watcher.current() === undefined) return { ready: false, cause: `no configuration received from the registry at ${options.registry} yet` };
    return router.readiness();
  };

  // grpc-js takes the h2c connections through a connection injector. The
  // Binds nothing: the sniffing listener injects HTTP/2 connections into it.
  const grpcServer = await startGrpcServer({
    port: null,
    reflection: true,
    logger: options.logger,
    maxReceiveMessageBytes: options.maxBodyBytes,
    services: [registration(PredictionService, impl)],
  });
  const injector = grpcServer.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const openRest = createRestHandler({
    predictor,
    metrics,
    registry: options.metrics,
    ...(options.metricsText ? { metricsText: options.metricsText } : {}),
    maxBodyBytes: options.maxBodyBytes,
    parse: { allowRaggedBatch: options.allowRaggedBatch },
    readiness,
  });
  const rest = options.appKeys ? restKeyGuard(options.appKeys, openRest) : openRest;
  const connect = connectNodeAdapter({
    routes: (router) => router.service(PredictionService, impl),
    readMaxBytes: options.maxBodyBytes,
  });
  const drain = new HttpDrain();
  const workerHeader = options.workerId === undefined ? undefined : String(options.workerId);
  const httpServer = http.createServer((req, res) => {
    drain.track(res);
    if (workerHeader !== undefined) res.setHeader("x-clipper-worker", workerHeader);
    if (req.url?.startsWith(SERVICE_PREFIX)) connect(req, res);
    else rest(req, res);
  });

  const sockets = new Set<net.Socket>();
  const route = {
    http2: (socket: net.Socket) => injector.injectConnection(socket),
    http1: (socket: net.Socket) => httpServer.emit("connection", socket),
  };
  const listener = options.tls ? createTlsAlpnListener({ ...route, ...options.tls }) : createSniffingListener(route);
  listener.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const address = listener.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;

  return {
    port,
    async close() {
      listener.close();
      drain.start();
      httpServer.closeIdleConnections();
      const drainMs = options.drainMs ?? 5000;
      await Promise.all([grpcServer.close(drainMs), drain.finished(drainMs)]);
      injector.destroy();
      for (const socket of sockets) socket.destroy();
      watcher.close();
      router.close();
    },
  };
}

/** How the gateway reaches its router: queries, feedback, readiness. */
interface RouterLink {
  query: QueryRouter;
  /** For feedback (SubmitFeedback). */
  client: Client<typeof QueryService>;
  readiness(): Promise<Readiness>;
  close(): void;
}

/** A router service over gRPC: queries on one QueryStream (or unary calls with --router-calls unary). */
function remoteRouter(options: GatewayOptions): RouterLink {
  const transport = createGrpcTransport({ address: options.router, ...options.routerSecurity });
  const health = createClient(Health, transport);
  const client = createClient(QueryService, transport);
  const stream =
    options.routerCalls === "unary"
      ? undefined
      : new RouterStream(client, undefined, () =>
          options.logger.warn({ router: options.router }, "the router does not serve QueryStream: one unary Query call per query from now on"),
        );
  return {
    query: stream ? stream.query.bind(stream) : unaryQueryRouter(client),
    client,
    async readiness() {
      try {
        const res = await health.check({ service: "" }, { timeoutMs: 1000 });
        if (res.status === HealthCheckResponse_ServingStatus.SERVING) return { ready: true, cause: "" };
        return { ready: false, cause: `the router at ${options.router} is not serving` };
      } catch (err) {
        return { ready: false, cause: `the router at ${options.router} is unreachable: ${ConnectError.from(err).rawMessage}` };
      }
    },
    close() {
      stream?.close();
      transport.close();
    },
  };
}

/**
 * The router inside the gateway's process (`--router in-process`): a query
 * is a call into its QueryProcessor, with no message to encode, no socket and
 * no second process on the way, which on one machine is most of what the
 * router cost per query (bench/RESULTS.md). Its metrics join the gateway's
 * /metrics; with --workers each worker runs its own router (its own queues
 * and cache) in front of the same replicas.
 */
function inProcessRouter(options: GatewayOptions): RouterLink {
  const core = createRouterCore({
    ...routerCoreSettings(inProcessRouterConfig()),
    registry: options.registry,
    logger: options.logger.child({ component: "router" }),
    metrics: options.metrics,
    ...(options.registrySecurity ? { registrySecurity: options.registrySecurity } : {}),
    ...(options.latencyBuckets ? { latencyBuckets: options.latencyBuckets } : {}),
  });
  return {
    query: (query, timeoutMs, signal) => queryResults(core.processor, query, timeoutMs, signal),
    client: createClient(
      QueryService,
      createRouterTransport(({ service }) => service(QueryService, core.impl)),
    ),
    readiness: async () =>
      core.configured()
        ? { ready: true, cause: "" }
        : { ready: false, cause: "the in-process router has not received the configuration from the registry yet" },
    close: () => core.close(),
  };
}

/**
 * Lets HTTP/1.1 requests being answered finish when the gateway stops: once
 * draining, every answer closes its connection, and `finished` waits for the
 * open ones (up to a bound) before the caller cuts what is left.
 */
class HttpDrain {
  private readonly open = new Set<http.ServerResponse>();
  private draining = false;
  private onIdle: (() => void) | undefined;

  track(res: http.ServerResponse): void {
    if (this.draining) res.setHeader("connection", "close");
    this.open.add(res);
    res.once("close", () => {
      this.open.delete(res);
      if (this.open.size === 0) this.onIdle?.();
    });
  }

  start(): void {
    this.draining = true;
    for (const res of this.open) if (!res.headersSent) res.setHeader("connection", "close");
  }

  finished(boundMs: number): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, boundMs);
      this.onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
