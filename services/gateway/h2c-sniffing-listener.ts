import net from "node:net";

/** The first bytes an HTTP/2 client sends (RFC 9113 §3.4). */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface SniffingListenerOptions {
  /** Takes connections that start with the HTTP/2 preface (gRPC over h2c). */
  http2: (socket: net.Socket) => void;
  /** Takes every other connection (HTTP/1.1: REST, Connect, gRPC-Web). */
  http1: (socket: net.Socket) => void;
  /** How long a new connection may stay silent before it is dropped. */
  firstBytesTimeoutMs?: number;
}

/**
 * One TCP port for two protocols: reads the first bytes of each connection,
 * puts them back (`unshift`) and hands the socket to the HTTP/2 or the
 * HTTP/1.1 server. Sets TCP_NODELAY on every socket: small responses on
 * keep-alive connections otherwise wait for delayed ACKs.
 */
export function createSniffingListener(options: SniffingListenerOptions): net.Server {
  const timeoutMs = options.firstBytesTimeoutMs ?? 30_000;
  return net.createServer((socket) => {
    socket.setNoDelay(true);
    let seen: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("end", onEnd);
    };
    const onError = () => cleanup();
    const onEnd = () => {
      cleanup();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, HTTP2_PREFACE.length);
      const prefixMatches = seen.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
      // Still a prefix of the preface: wait for more bytes to decide.
      if (prefixMatches && seen.length < HTTP2_PREFACE.length) return;
      cleanup();
      socket.pause();
      socket.unshift(seen);
      if (prefixMatches) {
        // Node's HTTP/2 session reads what is buffered on the socket, then takes over its handle.
        options.http2(socket);
      } else {
        options.http1(socket);
        // The HTTP/1.1 parser reads through 'data' events, which a paused socket does not emit.
        process.nextTick(() => socket.resume());
      }
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("end", onEnd);
    socket.once("close", () => clearTimeout(timer));
  });
}
