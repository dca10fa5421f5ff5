import http from "node:http";
import type net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { PredictionService } from "../../gen/clipper/v1/prediction_service_pb.js";
import { GRPCInferenceService } from "../../gen/inference/grpc_predict_v2_pb.js";
import { type ConfigWatcher, decodeUtf8KeepingErrors, type Logger, type prom, registration, startGrpcServer } from "../shared/index.js";
import { type AppKeys, restKeyGuard, withAppKeys } from "./app-keys.js";
import { createConnectHandler } from "./connect-handler.js";
import { GatewayMetrics } from "./gateway-metrics.js";
import { createSniffingListener } from "./h2c-sniffing-listener.js";
import { createInferenceServiceImpl } from "./oip/grpc-service.js";
import { OipInference } from "./oip/infer.js";
import { createOipRestHandler, isOipPath } from "./oip/rest-routes.js";
import { Predictor } from "./predictor.js";
import type { Readiness } from "./readiness.js";
import { createRestHandler } from "./rest-handler.js";
import type { RouterLink } from "./router-link.js";
import { createPredictionServiceImpl } from "./service.js";
import { createTlsAlpnListener } from "./tls-alpn-listener.js";

export interface GatewayOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The router the gateway asks: a router service (connectRouter) or one in this process. Closed by whoever made it. */
  router: RouterLink;
  /** The registry's configuration (applications): the process's one watcher. Closed by whoever made it. */
  config: ConfigWatcher;
  /** host:port of the registry, named when the gateway is not ready for want of its configuration. */
  registry: string;
  /** Largest request body (REST, Connect, gRPC-Web) or gRPC message accepted. */
  maxBodyBytes: number;
  /** Accept REST numeric batches whose inputs differ in length. */
  allowRaggedBatch: boolean;
  /** The router call's deadline when the caller sets none. */
  queryTimeoutMs: number;
  /** Queries answered at once; more are shed with RESOURCE_EXHAUSTED / HTTP 429. */
  maxInFlight: number;
  /**
   * The listening socket's accept queue (DEFAULT_LISTEN_BACKLOG; the kernel caps it at net.core.somaxconn): a connection
   * dropped past it costs its client a SYN retry, 1 s, then 3 s, ...
   */
  listenBacklog?: number;
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
}

export interface RunningGateway {
  readonly port: number;
  close(): Promise<void>;
}

/** Node's own default, 511, overflows when thousands of clients connect at once (see GatewayOptions.listenBacklog). */
export const DEFAULT_LISTEN_BACKLOG = 4096;

/** How long an idle HTTP/1.1 connection is kept open (see startGateway). */
const HTTP_KEEP_ALIVE_MS = 65_000;

const SERVICE_PREFIX = `/${PredictionService.typeName}/`;
/** Requests of one OIP ModelStreamInfer stream answered at once (the Predictor's --max-in-flight bounds them all). */
const OIP_STREAM_MAX_IN_FLIGHT = 256;

/**
 * The public edge on one port: HTTP/1.1 (Clipper's REST, Connect, gRPC-Web)
 * and gRPC over h2c, told apart by the HTTP/2 preface.
 */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { config: watcher, router } = options;
  const predictor = new Predictor({
    config: () => watcher.current(),
    router,
    defaultTimeoutMs: options.queryTimeoutMs,
    maxInFlight: options.maxInFlight,
  });
  const metrics = new GatewayMetrics(options.metrics, options.latencyBuckets);
  const openImpl = createPredictionServiceImpl(predictor, metrics);
  const impl = options.appKeys ? withAppKeys(openImpl, options.appKeys) : openImpl;

  const readiness = async (): Promise<Readiness> => {
    if (watcher.current() === undefined) return { ready: false, cause: `no configuration received from the registry at ${options.registry} yet` };
    return router.readiness();
  };

  // The Open Inference Protocol (KServe v2) over REST and gRPC: its models are the applications.
  const oip = new OipInference({
    predictor,
    config: () => watcher.current(),
    metrics,
    appKeys: options.appKeys,
    // A tensor's elements are at least a byte each in any encoding: no shape may declare more than a body can carry.
    limits: { maxElements: options.maxBodyBytes },
  });

  // grpc-js takes the h2c connections through a connection injector. The
  // Binds nothing: the sniffing listener injects HTTP/2 connections into it.
  const grpcServer = await startGrpcServer({
    port: null,
    reflection: true,
    logger: options.logger,
    maxReceiveMessageBytes: options.maxBodyBytes,
    services: [
      registration(PredictionService, impl),
      registration(GRPCInferenceService, createInferenceServiceImpl({ inference: oip, readiness, streamMaxInFlight: OIP_STREAM_MAX_IN_FLIGHT })),
    ],
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
    logger: options.logger,
  });
  const rest = options.appKeys ? restKeyGuard(options.appKeys, openRest) : openRest;
  // Connect and gRPC-Web; a body that is not a valid message answers INVALID_ARGUMENT, as over gRPC, and invalid UTF-8 in
  // a JSON body is kept as lone surrogates for the input checks to refuse by name (not U+FFFD).
  const connect = createConnectHandler({ service: PredictionService, impl, readMaxBytes: options.maxBodyBytes, decodeJsonText: decodeUtf8KeepingErrors });
  const oipRest = createOipRestHandler({ inference: oip, readiness, maxBodyBytes: options.maxBodyBytes, logger: options.logger });
  const drain = new HttpDrain();
  const workerHeader = options.workerId === undefined ? undefined : String(options.workerId);
  const httpServer = http.createServer((req, res) => {
    drain.track(res);
    if (workerHeader !== undefined) res.setHeader("x-clipper-worker", workerHeader);
    if (req.url?.startsWith(SERVICE_PREFIX)) connect(req, res);
    else if (isOipPath(req.url)) oipRest(req, res);
    else rest(req, res);
  });

  // Longer than the idle timeout of the load balancers and clients in front (60 s on AWS's, undici's 4 s): a connection
  // closed by the server as the client reuses it fails that request ("other side closed"); node's default is 5 s.
  httpServer.keepAliveTimeout = HTTP_KEEP_ALIVE_MS;
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
    listener.listen(options.port, options.host, options.listenBacklog ?? DEFAULT_LISTEN_BACKLOG, () => {
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
    },
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
