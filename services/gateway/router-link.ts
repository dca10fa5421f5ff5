import { type Client, createClient } from "@connectrpc/connect";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { type ClientSecurity, ConnectError, createGrpcTransport, type Logger } from "../shared/index.js";
import type { Readiness } from "./readiness.js";
import { type QueryRouter, RouterStream, unaryQueryRouter } from "./router-stream.js";

/**
 * How the gateway reaches its router: a router service over gRPC
 * (`connectRouter`), or a router core in the same process (composed by the
 * gateway's main.ts). The gateway takes it as a dependency and knows nothing
 * of which it is; whoever made the link closes it.
 */
export interface RouterLink {
  query: QueryRouter;
  /** For feedback (SubmitFeedback). */
  feedback: Pick<Client<typeof QueryService>, "submitFeedback">;
  /**
   * Why the router would refuse a query of the application for overload right
   * now, asked before its body is read; only a router in this process can
   * tell at no cost (a remote one refuses on the call).
   */
  overloadReason?(application: string): string | undefined;
  readiness(): Promise<Readiness>;
  close(): void;
}

export const ROUTER_CALLS = ["stream", "unary"] as const;
export type RouterCalls = (typeof ROUTER_CALLS)[number];

export interface ConnectRouterOptions {
  /** host:port of the router's QueryService. */
  address: string;
  /** How queries reach the router: multiplexed on one QueryStream (default), or one unary Query call each. */
  calls?: RouterCalls;
  /** TLS for the router (mutual TLS: the gateway's certificate identifies it). */
  security?: ClientSecurity;
  logger: Logger;
}

/** A router service over gRPC: queries on one QueryStream (or unary calls with `calls: "unary"`), readiness from its health service. */
export function connectRouter(options: ConnectRouterOptions): RouterLink {
  const transport = createGrpcTransport({ address: options.address, ...options.security });
  const health = createClient(Health, transport);
  const client = createClient(QueryService, transport);
  const stream =
    options.calls === "unary"
      ? undefined
      : new RouterStream(client, {
          onUnsupported: () =>
            options.logger.warn({ router: options.address }, "the router does not serve QueryStream: one unary Query call per query from now on"),
        });
  return {
    query: stream ? stream.query.bind(stream) : unaryQueryRouter(client),
    feedback: client,
    async readiness() {
      try {
        const res = await health.check({ service: "" }, { timeoutMs: 1000 });
        if (res.status === HealthCheckResponse_ServingStatus.SERVING) return { ready: true, cause: "" };
        return { ready: false, cause: `the router at ${options.address} is not serving` };
      } catch (err) {
        return { ready: false, cause: `the router at ${options.address} is unreachable: ${ConnectError.from(err).rawMessage}` };
      }
    },
    close() {
      stream?.close();
      transport.close();
    },
  };
}
