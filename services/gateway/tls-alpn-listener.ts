import type net from "node:net";
import tls from "node:tls";
import type { SniffingListenerOptions } from "./h2c-sniffing-listener.js";

export interface TlsAlpnListenerOptions extends Omit<SniffingListenerOptions, "firstBytesTimeoutMs"> {
  cert: Buffer;
  key: Buffer;
  /** How long a TLS handshake may take before the connection is dropped. */
  handshakeTimeoutMs?: number;
}

/**
 * The TLS form of the one-port listener: terminates TLS and routes each
 * connection by the protocol negotiated with ALPN, `h2` to grpc-js and
 * `http/1.1` (or a client that offers no ALPN) to the HTTP/1.1 server.
 */
export function createTlsAlpnListener(options: TlsAlpnListenerOptions): tls.Server {
  const server = tls.createServer(
    {
      cert: options.cert,
      key: options.key,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
      minVersion: "TLSv1.2",
    },
    (socket) => {
      socket.setNoDelay(true);
      if (socket.alpnProtocol === "h2") options.http2(socket as net.Socket);
      else options.http1(socket as net.Socket);
    },
  );
  // A failed handshake (a cleartext client, an untrusted peer) concerns only that connection.
  server.on("tlsClientError", (_err, socket) => socket.destroy());
  return server;
}
