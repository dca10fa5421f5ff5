import http from "node:http";

/**
 * The few Docker Engine API calls the container backend makes, over the
 * engine's unix socket (Docker's /var/run/docker.sock, or Podman's
 * `podman system service` socket: its Docker-compatible API). Paths carry no
 * API version, so each engine answers with its own current one (Docker 29
 * refuses versions below 1.44; Podman 4.3 serves 1.41).
 */
export interface DockerEngineClientOptions {
  socketPath: string;
  /** Limit for calls that are not streams (create, start, inspect, list, remove). */
  requestTimeoutMs?: number;
  /** Largest JSON answer accepted (a container list or an inspect is a few KiB each). */
  maxResponseBytes?: number;
}

/** An answer from the engine with an error status; `message` is the engine's own. */
export class DockerEngineError extends Error {
  constructor(
    readonly statusCode: number,
    readonly request: string,
    message: string,
  ) {
    super(`${request}: ${statusCode} ${message}`);
    this.name = "DockerEngineError";
  }
}

export interface ContainerUlimit {
  Name: string;
  Soft: number;
  Hard: number;
}

/** The part of POST /containers/create's body the backend sets. */
export interface ContainerCreateBody {
  Image: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  Labels: Record<string, string>;
  WorkingDir: string;
  User?: string;
  HostConfig: {
    NetworkMode: string;
    Memory?: number;
    MemorySwap?: number;
    NanoCpus?: number;
    PidsLimit?: number;
    Ulimits: ContainerUlimit[];
    Binds: string[];
  };
}

/** GET /containers/json's entries (the fields read here). */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Labels: Record<string, string> | null;
  State: string;
}

/** GET /containers/{id}/json (the fields read here). */
export interface ContainerInspect {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; OOMKilled: boolean; ExitCode: number; Error?: string; StartedAt?: string; FinishedAt?: string };
  Config: { Labels: Record<string, string> | null };
  HostConfig: { Memory?: number; NanoCpus?: number; PidsLimit?: number | null; NetworkMode?: string; Ulimits?: ContainerUlimit[] | null };
}

export type OutputStream = "stdout" | "stderr";

export interface FollowLogsOptions {
  /** Lines from before now to include (the engine's `tail`): a number, or "all" (a new container's whole output); default none. */
  tail?: number | "all";
  /** Longer lines are cut here (the rest is dropped). */
  maxLineChars: number;
  onLine(stream: OutputStream, text: string, timeMs: number): void;
  signal: AbortSignal;
}

const DEFAULTS = { requestTimeoutMs: 30_000, maxResponseBytes: 8 * 1024 * 1024 };

export class DockerEngineClient {
  private readonly o: Required<DockerEngineClientOptions>;

  constructor(options: DockerEngineClientOptions) {
    this.o = { ...DEFAULTS, ...options };
  }

  get socketPath(): string {
    return this.o.socketPath;
  }

  /** GET /_ping: "OK" once the engine serves the API (cheap; /version takes Podman seconds). */
  async ping(): Promise<void> {
    await this.request("GET", "/_ping", undefined, this.o.requestTimeoutMs);
  }

  /** GET /version: the engine's name and versions (Podman says so in Components). */
  async version(): Promise<{ Version: string; ApiVersion: string; Components?: { Name: string; Version: string }[] }> {
    return this.json("GET", "/version");
  }

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.json("GET", `/images/${encodeURIComponent(image)}/json`);
      return true;
    } catch (err) {
      if (err instanceof DockerEngineError && err.statusCode === 404) return false;
      throw err;
    }
  }

  async createContainer(name: string, body: ContainerCreateBody): Promise<{ Id: string; Warnings?: string[] | null }> {
    return this.json("POST", `/containers/create?name=${encodeURIComponent(name)}`, body);
  }

  async startContainer(id: string): Promise<void> {
    await this.json("POST", `/containers/${id}/start`);
  }

  async killContainer(id: string, signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    await this.json("POST", `/containers/${id}/kill?signal=${signal}`);
  }

  /** Removes a container (running or not) and its anonymous volumes; a container already gone is no error. */
  async removeContainer(id: string): Promise<void> {
    try {
      await this.json("DELETE", `/containers/${id}?force=true&v=true`);
    } catch (err) {
      if (err instanceof DockerEngineError && err.statusCode === 404) return;
      throw err;
    }
  }

  async inspectContainer(id: string): Promise<ContainerInspect> {
    return this.json("GET", `/containers/${id}/json`);
  }

  /** Every container (running or not) carrying all of `labels` (`key=value`). */
  async listContainers(labels: string[]): Promise<ContainerSummary[]> {
    const filters = encodeURIComponent(JSON.stringify({ label: labels }));
    return this.json("GET", `/containers/json?all=true&filters=${filters}`);
  }

  /** Resolves with the exit status once the container is not running (at once if it is not). */
  async waitContainer(id: string, signal: AbortSignal): Promise<{ StatusCode: number }> {
    return this.json("POST", `/containers/${id}/wait?condition=not-running`, undefined, 0, signal);
  }

  /**
   * Follows a container's output (GET /containers/{id}/logs?follow=1) until it
   * exits or `signal` aborts, one call of onLine per line. Without a TTY the
   * engine multiplexes stdout and stderr in frames: 1 byte stream, 3 zero
   * bytes, a 4-byte big-endian length, then that many bytes.
   */
  followLogs(id: string, options: FollowLogsOptions): Promise<void> {
    const query = `follow=1&stdout=1&stderr=1&timestamps=1&tail=${options.tail ?? 0}`;
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.o.socketPath, method: "GET", path: `/containers/${id}/logs?${query}`, signal: options.signal }, (res) => {
        if ((res.statusCode ?? 500) >= 300) {
          readBody(res, this.o.maxResponseBytes).then(
            (body) => reject(new DockerEngineError(res.statusCode ?? 500, `GET /containers/${id}/logs`, engineMessage(body))),
            reject,
          );
          return;
        }
        const lines = { stdout: new LineSplitter(options.maxLineChars), stderr: new LineSplitter(options.maxLineChars) };
        const emit = (stream: OutputStream, raw: string) => {
          const { text, timeMs } = splitTimestamp(raw);
          options.onLine(stream, text, timeMs);
        };
        let pending: Buffer = Buffer.alloc(0);
        res.on("data", (chunk: Buffer) => {
          pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
          while (pending.length >= 8) {
            const size = pending.readUInt32BE(4);
            if (pending.length < 8 + size) break;
            const stream: OutputStream = pending[0] === 2 ? "stderr" : "stdout";
            for (const line of lines[stream].push(pending.subarray(8, 8 + size).toString("utf8"))) emit(stream, line);
            pending = pending.subarray(8 + size);
          }
        });
        res.on("end", () => {
          for (const stream of ["stdout", "stderr"] as const) {
            const last = lines[stream].flush();
            if (last !== undefined) emit(stream, last);
          }
          resolve();
        });
        res.on("error", (err) => (options.signal.aborted ? resolve() : reject(err)));
      });
      req.on("error", (err) => (options.signal.aborted ? resolve() : reject(err)));
      req.end();
    });
  }

  private async json<T>(method: string, path: string, body?: unknown, timeoutMs = this.o.requestTimeoutMs, signal?: AbortSignal): Promise<T> {
    const text = await this.request(method, path, body, timeoutMs, signal);
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  /** The answer's body as text; an error status rejects with the engine's message. */
  private request(method: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<string> {
    const request = `${method} ${path.split("?")[0]}`;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.o.socketPath,
          method,
          path,
          headers: payload === undefined ? {} : { "Content-Type": "application/json", "Content-Length": payload.length },
          ...(signal === undefined ? {} : { signal }),
        },
        (res) => {
          readBody(res, this.o.maxResponseBytes).then((text) => {
            const status = res.statusCode ?? 500;
            if (status >= 300) reject(new DockerEngineError(status, request, engineMessage(text)));
            else resolve(text);
          }, reject);
        },
      );
      if (timeoutMs > 0)
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`${request}: no answer from the engine at ${this.o.socketPath} within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(payload);
    });
  }
}

function readBody(res: http.IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        res.destroy(new Error(`the engine's answer exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
  });
}

/** The engine's error text: `{"message": ...}` (Docker) or `{"cause": ..., "message": ...}` (Podman). */
function engineMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // not JSON: quote it as it is
  }
  return body.slice(0, 500);
}

/** `timestamps=1` puts an RFC 3339 time and a space before each line. */
function splitTimestamp(raw: string): { text: string; timeMs: number } {
  const space = raw.indexOf(" ");
  const timeMs = space > 0 ? Date.parse(raw.slice(0, space)) : Number.NaN;
  return Number.isNaN(timeMs) ? { text: raw, timeMs: Date.now() } : { text: raw.slice(space + 1), timeMs };
}

/** Whole lines out of chunks of text; a line longer than `maxChars` is cut there (its rest dropped up to the newline). */
export class LineSplitter {
  private partial = "";
  private overflowing = false;

  constructor(private readonly maxChars: number) {}

  push(text: string): string[] {
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const newline = text.indexOf("\n", start);
      const piece = text.slice(start, newline < 0 ? undefined : newline);
      if (!this.overflowing) {
        this.partial += piece;
        if (this.partial.length > this.maxChars) {
          this.partial = this.partial.slice(0, this.maxChars);
          this.overflowing = true;
        }
      }
      if (newline < 0) return out;
      out.push(this.partial.replace(/\r$/, ""));
      this.partial = "";
      this.overflowing = false;
      start = newline + 1;
    }
  }

  /** The unfinished last line, if any. */
  flush(): string | undefined {
    const last = this.partial;
    this.partial = "";
    this.overflowing = false;
    return last === "" ? undefined : last;
  }
}
