/**
 * The console's one HTTP/1.1 port: the built page, its JSON/SSE API, /healthz
 * and the console's own /metrics. Reads need a token the tokens file knows
 * (when one is configured); writes go to the registry with the caller's token
 * and the registry decides (its PERMISSION_DENIED comes back as 403): the
 * console never grants more than the token's own role.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { bearerToken, Code, ConnectError, type Logger, type prom, type TokenAuthenticator } from "../shared/index.js";
import type { ApiError, ConsoleState, HelloEvent, MetricsFrame, SessionInfo } from "./console-api.js";
import { httpStatusOf } from "./http-status.js";
import { BadRequest, type OperatorCalls } from "./mutations.js";

export interface ConsoleHttpOptions {
  host: string;
  port: number;
  /** Serve HTTPS with this certificate (as the gateway's public port does: browsers present no client certificate). */
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** The built page (dist/console-ui): index.html and its assets. */
  uiDir: string;
  /** Undefined: the console checks no tokens (the registry may still). */
  authenticator: TokenAuthenticator | undefined;
  calls: OperatorCalls;
  state: () => ConsoleState;
  history: () => MetricsFrame[];
  /** Subscribe to state changes and frames; each returns an unsubscribe function. */
  onState: (listener: () => void) => () => void;
  onFrame: (listener: (frame: MetricsFrame) => void) => () => void;
  metrics: prom.Registry;
  requests: prom.Counter<"route" | "status">;
  streams: prom.Gauge;
  maxStreams: number;
  maxBodyBytes: number;
  /** A stream whose unread output exceeds this is closed (a stalled page must not hold memory). */
  maxStreamBufferBytes: number;
  logger: Logger;
}

export interface RunningConsoleHttp {
  port: number;
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".map": "application/json",
};

/** Most files the page may hold; a build writes a handful. */
const MAX_UI_FILES = 200;

/** The built page, read once at start: no path from a request ever reaches the file system. */
export function loadUi(uiDir: string): Map<string, { body: Buffer; type: string }> {
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else {
        if (files.size >= MAX_UI_FILES) throw new Error(`${uiDir} holds more than ${MAX_UI_FILES} files; is it the console's build?`);
        const rel = `/${path.relative(uiDir, full).split(path.sep).join("/")}`;
        files.set(rel, { body: readFileSync(full), type: CONTENT_TYPES[path.extname(full)] ?? "application/octet-stream" });
      }
    }
  };
  walk(uiDir);
  if (!files.has("/index.html")) throw new Error(`${uiDir} has no index.html: build the console first (\`clipper up\` does)`);
  return files;
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  params: string[],
  session: SessionInfo,
  authorization: string | undefined,
) => Promise<void>;

interface Route {
  method: string;
  pattern: RegExp;
  name: string;
  handler: Handler;
}

const SEGMENT = "([^/]+)";

export async function startConsoleHttp(options: ConsoleHttpOptions): Promise<RunningConsoleHttp> {
  const ui = loadUi(options.uiDir);
  const streams = new Set<http.ServerResponse>();
  const m = options.calls;

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  const done = async (res: http.ServerResponse, work: Promise<void>) => {
    await work;
    json(res, 200, { ok: true, state: options.state() });
  };

  const routes: Route[] = [
    { method: "GET", pattern: /^\/api\/session$/, name: "session", handler: async (_q, res, _p, session) => json(res, 200, session) },
    { method: "GET", pattern: /^\/api\/state$/, name: "state", handler: async (_q, res) => json(res, 200, options.state()) },
    { method: "GET", pattern: /^\/api\/history$/, name: "history", handler: async (_q, res) => json(res, 200, options.history()) },
    { method: "GET", pattern: /^\/api\/events$/, name: "events", handler: async (req, res) => openStream(req, res) },
    {
      method: "GET",
      pattern: new RegExp(`^/api/models/${SEGMENT}/versions/${SEGMENT}/logs$`),
      name: "logs",
      handler: async (req, res, [model = "", version = ""], _s, auth) => {
        const query = new URL(req.url ?? "/", "http://console").searchParams;
        const lines = Number(query.get("lines") ?? "100");
        if (!Number.isInteger(lines) || lines < 1) throw new HttpProblem(400, '"lines" must be a positive integer');
        json(res, 200, await m.replicaLogs(auth, model, version, query.get("replica") ?? "", lines));
      },
    },
    {
      method: "POST",
      pattern: /^\/api\/applications$/,
      name: "create_application",
      handler: async (req, res, _p, _s, auth) => done(res, m.createApplication(auth, await readJson(req, options.maxBodyBytes))),
    },
    {
      method: "DELETE",
      pattern: new RegExp(`^/api/applications/${SEGMENT}$`),
      name: "delete_application",
      handler: async (_q, res, [app = ""], _s, auth) => done(res, m.deleteApplication(auth, app)),
    },
    {
      method: "POST",
      pattern: new RegExp(`^/api/applications/${SEGMENT}/links$`),
      name: "link",
      handler: async (req, res, [app = ""], _s, auth) => done(res, m.link(auth, app, await readJson(req, options.maxBodyBytes))),
    },
    {
      method: "DELETE",
      pattern: new RegExp(`^/api/applications/${SEGMENT}/links/${SEGMENT}$`),
      name: "unlink",
      handler: async (_q, res, [app = "", model = ""], _s, auth) => done(res, m.unlink(auth, app, model)),
    },
    {
      method: "PUT",
      pattern: new RegExp(`^/api/applications/${SEGMENT}/policy$`),
      name: "set_policy",
      handler: async (req, res, [app = ""], _s, auth) => done(res, m.setPolicy(auth, app, await readJson(req, options.maxBodyBytes))),
    },
    {
      method: "PUT",
      pattern: new RegExp(`^/api/models/${SEGMENT}/current$`),
      name: "set_current_version",
      handler: async (req, res, [model = ""], _s, auth) => done(res, m.setCurrentVersion(auth, model, await readJson(req, options.maxBodyBytes))),
    },
    {
      method: "PUT",
      pattern: new RegExp(`^/api/models/${SEGMENT}/versions/${SEGMENT}/replicas$`),
      name: "scale",
      handler: async (req, res, [model = "", version = ""], _s, auth) => done(res, m.scale(auth, model, version, await readJson(req, options.maxBodyBytes))),
    },
    {
      method: "PUT",
      pattern: new RegExp(`^/api/models/${SEGMENT}/versions/${SEGMENT}/batching$`),
      name: "set_batching",
      handler: async (req, res, [model = "", version = ""], _s, auth) =>
        done(res, m.setBatching(auth, model, version, await readJson(req, options.maxBodyBytes))),
    },
  ];

  const session = (authorization: string | undefined, token: string | undefined): SessionInfo => {
    if (options.authenticator === undefined) return { role: "open", name: "", canWrite: true };
    if (token === undefined) {
      throw new HttpProblem(
        401,
        authorization === undefined ? "this console needs an API token: Authorization: Bearer <token>" : "expected Authorization: Bearer <token>",
      );
    }
    const principal = options.authenticator.authenticate(token);
    if (principal === undefined) throw new HttpProblem(401, "the tokens file knows no such token");
    const canWrite = principal.role === "admin";
    return {
      role: principal.role,
      name: principal.name,
      canWrite,
      ...(canWrite ? {} : { readOnlyReason: `the token "${principal.name}" has the ${principal.role} role: it sees everything and changes nothing` }),
    };
  };

  const openStream = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (streams.size >= options.maxStreams) throw new HttpProblem(503, `the console already serves ${options.maxStreams} live pages`);
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" });
    res.socket?.setNoDelay(true);
    streams.add(res);
    options.streams.set(streams.size);
    const send = (event: string, data: unknown) => {
      if (res.writableLength > options.maxStreamBufferBytes) {
        options.logger.warn({ buffered: res.writableLength }, "closing a live page that reads too slowly");
        res.destroy();
        return;
      }
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const hello: HelloEvent = { state: options.state(), history: options.history() };
    send("hello", hello);
    // State changes come in bursts (a deploy reports replicas several times): the first of a burst goes out at once,
    // so a short-lived state (a replica down for the 500 ms before its restart) is seen, the rest at most every 200 ms.
    let statePending: NodeJS.Timeout | undefined;
    let lastStateAt = 0;
    const sendState = () => {
      lastStateAt = Date.now();
      send("state", options.state());
    };
    const offState = options.onState(() => {
      if (statePending !== undefined) return;
      const wait = lastStateAt + 200 - Date.now();
      if (wait <= 0) sendState();
      else
        statePending = setTimeout(() => {
          statePending = undefined;
          sendState();
        }, wait);
    });
    const offFrame = options.onFrame((frame) => send("frame", frame));
    const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
    await new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(statePending);
        clearInterval(keepAlive);
        offState();
        offFrame();
        streams.delete(res);
        options.streams.set(streams.size);
        resolve();
      };
      res.once("close", end);
      req.once("aborted", end);
    });
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<string> => {
    const url = new URL(req.url ?? "/", "http://console");
    const method = req.method ?? "GET";
    if (url.pathname === "/healthz" && method === "GET") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok\n");
      return "healthz";
    }
    if (url.pathname === "/metrics" && method === "GET") {
      res.writeHead(200, { "content-type": options.metrics.contentType });
      res.end(await options.metrics.metrics());
      return "metrics";
    }
    if (url.pathname.startsWith("/api/")) {
      for (const route of routes) {
        const match = route.pattern.exec(url.pathname);
        if (match === null) continue;
        if (route.method !== method) continue;
        const authorization = req.headers.authorization;
        const headers = new Headers(authorization === undefined ? {} : { authorization });
        const who = session(authorization, bearerToken(headers));
        const params = match.slice(1).map((p) => decodeURIComponent(p));
        await route.handler(req, res, params, who, authorization);
        return route.name;
      }
      const known = routes.some((r) => r.pattern.test(url.pathname));
      throw new HttpProblem(known ? 405 : 404, known ? `${method} is not allowed on ${url.pathname}` : `no API route ${url.pathname}`);
    }
    if (method !== "GET" && method !== "HEAD") throw new HttpProblem(405, `${method} is not allowed on ${url.pathname}`);
    const file = ui.get(url.pathname === "/" ? "/index.html" : url.pathname);
    if (file === undefined) throw new HttpProblem(404, `no file ${url.pathname}`);
    // Assets carry a content hash in their names; index.html must be fetched fresh to find the new ones.
    const cache = url.pathname.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache";
    res.writeHead(200, { "content-type": file.type, "content-length": file.body.length, "cache-control": cache });
    res.end(method === "HEAD" ? undefined : file.body);
    return "static";
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.socket.setNoDelay(true);
    handle(req, res).then(
      (route) => options.requests.inc({ route, status: String(res.statusCode) }),
      (err: unknown) => {
        const { status, body } = problemOf(err);
        if (status >= 500 && status !== 503) options.logger.error({ err, url: req.url }, "console request failed");
        options.requests.inc({ route: "error", status: String(status) });
        if (res.headersSent) {
          res.destroy();
          return;
        }
        json(res, status, body);
      },
    );
  };
  const server = options.tls === undefined ? http.createServer(onRequest) : https.createServer({ cert: options.tls.cert, key: options.tls.key }, onRequest);
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : options.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function problemOf(err: unknown): { status: number; body: ApiError } {
  if (err instanceof HttpProblem) return { status: err.status, body: { error: err.message } };
  if (err instanceof BadRequest) return { status: 400, body: { error: err.message } };
  if (err instanceof ConnectError) {
    return { status: httpStatusOf(err.code), body: { error: `the registry refused: ${err.rawMessage}`, code: Code[err.code] } };
  }
  return { status: 500, body: { error: (err as Error).message ?? String(err) } };
}

async function readJson(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!type.startsWith("application/json")) throw new HttpProblem(415, "send the body as application/json");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new HttpProblem(413, `the body is over ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (err) {
    throw new HttpProblem(400, `the body is not JSON: ${(err as Error).message}`);
  }
}
