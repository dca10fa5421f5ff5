import http from "node:http";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";

/**
 * How a model replica's endpoint is written says what it speaks: `host:port`
 * gRPC, `http://host:port` the Connect protocol on HTTP/1.1 (unary calls
 * only: containers in languages without gRPC, such as R).
 */
export const CONNECT_ENDPOINT_PREFIX = "http://";

export const speaksConnect = (endpoint: string): boolean => endpoint.startsWith(CONNECT_ENDPOINT_PREFIX);

/** The endpoint of a replica listening on `host:port` with `protocol`. */
export const replicaEndpoint = (hostPort: string, protocol: "grpc" | "connect" = "grpc"): string =>
  protocol === "connect" ? `${CONNECT_ENDPOINT_PREFIX}${hostPort}` : hostPort;

/** A transport to a replica in its own protocol: grpc-js for gRPC endpoints, connect-node over HTTP/1.1 for Connect ones. */
export function replicaTransport(endpoint: string): GrpcTransport {
  if (!speaksConnect(endpoint)) return createGrpcTransport({ address: endpoint });
  // A connection per call, bounded: httpuv (R) writes an answer's headers and body apart on a socket without
  // TCP_NODELAY, so on a reused connection Nagle holds the body until the client's delayed ACK, 40 ms later.
  // Measured with test/conformance/runtime-overhead.ts --protocol connect on a no-op R model: 50 ms per call
  // kept alive, 7.4 ms on a new connection each (loopback connects cost well under a millisecond).
  const agent = new http.Agent({ keepAlive: false, maxSockets: 8 });
  const transport = createConnectTransport({
    baseUrl: endpoint,
    httpVersion: "1.1",
    useBinaryFormat: true,
    nodeOptions: { agent },
    readMaxBytes: 64 * 1024 * 1024,
    writeMaxBytes: 64 * 1024 * 1024,
  });
  return {
    address: endpoint,
    close: () => agent.destroy(),
    // connect-node writes a fractional timeout into connect-timeout-ms as it is given, where the protocol
    // (and the R runtime) wants whole milliseconds.
    unary: (method, signal, timeoutMs, header, input, contextValues) => transport.unary(method, signal, wholeMs(timeoutMs), header, input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) => transport.stream(method, signal, wholeMs(timeoutMs), header, input, contextValues),
  };
}

function wholeMs(timeoutMs: number | undefined): number | undefined {
  return timeoutMs === undefined ? undefined : Math.max(1, Math.ceil(timeoutMs));
}
