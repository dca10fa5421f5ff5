import net from "node:net";
import type { Outcome, SendFn } from "./loadgen.js";

/**
 * A minimal HTTP/1.1 keep-alive client for POSTing small JSON, in the spirit of
 * wrk: requests are written as prepared text, and a response is read by its
 * status line and Content-Length only. node:http's client costs about 80 µs of
 * CPU per request on this machine, which made the generator, not the server,
 * the limit; this one costs a fraction of that. One request in flight per
 * connection (no pipelining); responses carry Content-Length or are chunked.
 */
export interface RawHttpOptions {
  host: "127.0.0.1";
  port: number;
  path: string;
  /** Connections opened lazily up to this many; callers beyond it wait in a bounded line. */
  connections: number;
  /** Callers allowed to wait for a connection; more fail at once. */
  maxWaiting: number;
  timeoutMs: number;
  body(sequence: number): string;
  classify(status: number, body: string): Outcome;
}

interface Pending {
  resolve: (o: Outcome) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const HEADER_END = Buffer.from("\r\n\r\n");
const MAX_RESPONSE_BYTES = 1 << 20;

class Connection {
  private buffered: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  private broken: Error | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly classify: RawHttpOptions["classify"],
    private readonly onFree: (c: Connection) => void,
    private readonly onDead: (c: Connection) => void,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => this.fail(new Error("connection closed by the server")));
  }

  get usable(): boolean {
    return this.broken === undefined;
  }

  request(head: string, body: string, timeoutMs: number): Promise<Outcome> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new Error(`no answer in ${timeoutMs} ms`));
        this.socket.destroy();
      }, timeoutMs);
      this.pending = { resolve, reject, timer };
      this.socket.write(`${head + Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    if (this.broken === undefined) {
      this.broken = err;
      this.onDead(this);
    }
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const headerEnd = this.buffered.indexOf(HEADER_END);
    if (headerEnd < 0) {
      if (this.buffered.length > MAX_RESPONSE_BYTES) this.protocolError("response header too large");
      return;
    }
    const header = this.buffered.toString("latin1", 0, headerEnd);
    const status = Number(header.slice(9, 12));
    const bodyStart = headerEnd + HEADER_END.length;
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/i.exec(header);
    let body: string;
    if (lengthMatch) {
      const length = Number(lengthMatch[1]);
      if (length > MAX_RESPONSE_BYTES) {
        this.protocolError(`response of ${length} bytes`);
        return;
      }
      if (this.buffered.length < bodyStart + length) return;
      body = this.buffered.toString("utf8", bodyStart, bodyStart + length);
      this.buffered = this.buffered.subarray(bodyStart + length);
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(header)) {
      const chunked = decodeChunked(this.buffered, bodyStart);
      if (chunked === undefined) {
        if (this.buffered.length > MAX_RESPONSE_BYTES) this.protocolError("chunked response too large");
        return;
      }
      if (chunked instanceof Error) {
        this.protocolError(chunked.message);
        return;
      }
      body = chunked.body;
      this.buffered = this.buffered.subarray(chunked.end);
    } else {
      this.protocolError(`response with neither Content-Length nor chunked encoding: ${header.split("\r\n", 1)[0]}`);
      return;
    }
    const p = this.pending;
    this.pending = undefined;
    if (p === undefined) {
      this.protocolError("a response nobody asked for");
      return;
    }
    clearTimeout(p.timer);
    const closing = /\r\nconnection:\s*close/i.test(header);
    if (closing) {
      this.broken = new Error("server closed the connection");
      this.onDead(this);
      this.socket.end();
    }
    try {
      p.resolve(this.classify(status, body));
    } catch (err) {
      p.reject(err as Error);
    }
    if (!closing) this.onFree(this);
  }

  private protocolError(message: string): void {
    this.fail(new Error(message));
    this.socket.destroy();
  }
}

/** A complete chunked body starting at `start` (trailers not supported), or undefined while incomplete. */
function decodeChunked(buffer: Buffer, start: number): { body: string; end: number } | Error | undefined {
  const parts: Buffer[] = [];
  let pos = start;
  for (;;) {
    const lineEnd = buffer.indexOf("\r\n", pos, "latin1");
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(buffer.toString("latin1", pos, lineEnd), 16);
    if (Number.isNaN(size)) return new Error("bad chunk size in a chunked response");
    const dataStart = lineEnd + 2;
    if (size === 0) {
      if (buffer.length < dataStart + 2) return undefined;
      return { body: Buffer.concat(parts).toString("utf8"), end: dataStart + 2 };
    }
    if (buffer.length < dataStart + size + 2) return undefined;
    parts.push(buffer.subarray(dataStart, dataStart + size));
    pos = dataStart + size + 2;
  }
}

export function rawHttpClient(options: RawHttpOptions): { send: SendFn; close(): void } {
  const head = `POST ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: `;
  const idle: Connection[] = [];
  const all = new Set<Connection>();
  const waiting: Array<(c: Connection | Error) => void> = [];
  let closed = false;
  let opening = 0;

  const onFree = (c: Connection) => {
    const next = waiting.shift();
    if (next) next(c);
    else idle.push(c);
  };
  const onDead = (c: Connection) => {
    all.delete(c);
    const i = idle.indexOf(c);
    if (i >= 0) idle.splice(i, 1);
    // A waiter must not wait for a connection that will never be freed: open a replacement for it.
    const next = waiting.shift();
    if (next && !closed) connect().then(next, (err: Error) => next(err));
  };

  const connect = (): Promise<Connection> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: options.host, port: options.port });
      const onError = (err: Error) => reject(err);
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("error", onError);
        const c = new Connection(socket, options.classify, onFree, onDead);
        all.add(c);
        resolve(c);
      });
    });

  const acquire = async (): Promise<Connection> => {
    if (closed) throw new Error("client closed");
    for (let c = idle.pop(); c !== undefined; c = idle.pop()) if (c.usable) return c;
    if (all.size + opening < options.connections) {
      opening++;
      try {
        return await connect();
      } finally {
        opening--;
      }
    }
    if (waiting.length >= options.maxWaiting) throw new Error(`more than ${options.maxWaiting} requests waiting for a connection`);
    const got = await new Promise<Connection | Error>((resolve) => waiting.push(resolve));
    if (got instanceof Error) throw got;
    return got;
  };
  const send: SendFn = async (sequence) => {
    const c = await acquire();
    return c.request(head, options.body(sequence), options.timeoutMs);
  };
  return {
    send,
    close: () => {
      closed = true;
      for (const w of waiting.splice(0)) w(new Error("client closed"));
      for (const c of all) c.close();
      all.clear();
      idle.length = 0;
    },
  };
}
