import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  Cancellation,
  Code,
  ConnectError,
  decodeUtf8KeepingErrors,
  extractTraceContext,
  type Logger,
  type prom,
  traceContext,
  tracingEnabled,
} from "../shared/index.js";
import { errorOutcome, type GatewayMetrics } from "./gateway-metrics.js";
import type { Predictor } from "./predictor.js";
import type { Readiness } from "./readiness.js";
import { parseFeedbackBody, parseJsonObject, parsePredictBody, RestError, type RestParseOptions, restPrediction } from "./rest-json.js";

export interface RestHandlerDeps {
  predictor: Predictor;
  metrics: GatewayMetrics;
  registry: prom.Registry;
  /** The /metrics text when it is not just `registry`'s (the sum over the workers of a --workers gateway). */
  metricsText?: () => Promise<string>;
  /** Largest request body read; a larger one is answered 413 without reading the rest. */
  maxBodyBytes: number;
  parse: RestParseOptions;
  readiness: () => Promise<Readiness>;
  /** Where the cause of an internal error goes (the client gets a correlation id to quote). */
  logger: Logger;
}

const ROUTE = /^\/([^/]+)\/(predict|update)$/;

/** Clipper's REST API (`POST /{app}/predict`, `POST /{app}/update`) plus /healthz, /readyz and /metrics. */
export function createRestHandler(deps: RestHandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(deps, req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, internalError(err, req, deps.logger).body());
      else res.destroy();
    });
  };
}

async function handle(deps: RestHandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
  if (path === "/healthz" || path === "/readyz" || path === "/metrics") {
    if (req.method !== "GET" && req.method !== "HEAD") return methodNotAllowed(res, req, "GET");
    if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (path === "/metrics") {
      const text = await (deps.metricsText ?? (() => deps.registry.metrics()))();
      res.writeHead(200, { "content-type": deps.registry.contentType, "content-length": Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    const readiness = await deps.readiness();
    return readiness.ready ? sendJson(res, 200, { status: "ready" }) : sendJson(res, 503, { error: "not ready", cause: readiness.cause });
  }
  const route = ROUTE.exec(path);
  if (route === null) return sendJson(res, 404, { error: "not found", cause: `no route for ${req.method} ${path}` });
  if (req.method !== "POST") return methodNotAllowed(res, req, "POST");
  const [, appName = "", action] = route;
  const startedAt = performance.now();
  let label = "unknown";
  try {
    const app = deps.predictor.application(appName);
    label = app.name;
    if (action === "predict") {
      // Refused for overload before the body is read or parsed: shedding must cost far less than answering.
      const shed = deps.predictor.shedReason(app.name);
      if (shed !== undefined) {
        await discardBody(req);
        throw new RestError(429, "too many requests", shed);
      }
    }
    const body = parseJsonObject(await readBody(req, deps.maxBodyBytes));
    const caller = cancelOnClose(res);
    if (action === "update") {
      const feedback = parseFeedbackBody(body, app.inputType);
      const accepted = await deps.predictor.feedback(app.name, feedback.inputs, [feedback.label], feedback.uid, caller);
      sendJson(res, 200, { accepted: accepted > 0 });
      deps.metrics.observe(label, "rest", "ok", startedAt);
      return;
    }
    const request = parsePredictBody(body, app.inputType, deps.parse);
    const query = () =>
      deps.predictor.query(app.name, request.inputs, {
        version: request.version,
        uid: request.uid,
        timeoutMs: undefined,
        signal: caller,
        receivedAt: startedAt,
      });
    // A caller's `traceparent` header makes the prediction part of its trace (with tracing on).
    const results = await (tracingEnabled() ? traceContext.with(extractTraceContext({ get: (key) => headerValue(req, key) }), query) : query());
    const predictions = results.map(restPrediction);
    sendJson(res, 200, request.batch ? { batch_predictions: predictions } : predictions[0]);
    deps.metrics.observe(label, "rest", results.some((r) => r.default) ? "default" : "ok", startedAt);
  } catch (err) {
    const restError = toRestError(err) ?? internalError(err, req, deps.logger);
    // Shed load: tell well-behaved clients when to come back.
    if (restError.status === 429) res.setHeader("retry-after", "1");
    if (restError.status === 413) {
      res.setHeader("connection", "close");
      await discardBody(req);
    }
    sendJson(res, restError.status, restError.body());
    deps.metrics.observe(label, "rest", err instanceof RestError ? `http_${err.status}` : errorOutcome(err), startedAt);
  }
}

/**
 * Reads the whole body as UTF-8, or fails with 413 as soon as it exceeds `limit` (the rest is not read).
 * Invalid UTF-8 is kept as lone surrogates (not U+FFFD), so the parser refuses the string that held it, by name.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const tooLarge = () => new RestError(413, "request body too large", `the body exceeds the limit of ${limit} bytes`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(decodeUtf8KeepingErrors(Buffer.concat(chunks))));
    req.once("error", reject);
  });
}

/** Bounds on reading and dropping an oversized body before answering 413. */
const DISCARD_MAX_BYTES = 64 * 1024 * 1024;
const DISCARD_MAX_MS = 5_000;

/**
 * Reads and drops the rest of an oversized body, within bounds, so a client
 * still uploading reads the 413 instead of a reset connection (EPIPE). Past
 * the bounds the connection is closed anyway.
 */
function discardBody(req: IncomingMessage): Promise<void> {
  if (req.complete) return Promise.resolve();
  return new Promise((resolve) => {
    let dropped = 0;
    const done = () => {
      clearTimeout(timer);
      req.off("data", onData);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > DISCARD_MAX_BYTES) done();
    };
    const timer = setTimeout(done, DISCARD_MAX_MS);
    req.on("data", onData);
    req.once("end", done);
    req.once("error", done);
    req.resume();
  });
}

/** Cancelled when the client goes away before the answer (the connection closes with the response unfinished). */
function cancelOnClose(res: ServerResponse): Cancellation {
  const cancellation = new Cancellation();
  res.once("close", () => {
    if (!res.writableFinished) cancellation.abort();
  });
  return cancellation;
}

const STATUS_OF_CODE: Partial<Record<Code, [number, string]>> = {
  [Code.InvalidArgument]: [400, "invalid request"],
  [Code.NotFound]: [404, "not found"],
  [Code.FailedPrecondition]: [400, "failed precondition"],
  [Code.ResourceExhausted]: [429, "too many requests"],
  [Code.Unavailable]: [503, "service unavailable"],
  [Code.DeadlineExceeded]: [504, "deadline exceeded"],
  [Code.Canceled]: [499, "request cancelled"],
};

/** The answer for a client's error or an expected failure (its message is meant for the caller); undefined for an internal error. */
export function toRestError(err: unknown): RestError | undefined {
  if (err instanceof RestError) return err;
  if (err instanceof ConnectError) {
    const mapped = STATUS_OF_CODE[err.code];
    return mapped && new RestError(mapped[0], mapped[1], err.rawMessage);
  }
  return undefined;
}

/**
 * An internal error answers a generic message and a correlation id, never the
 * error itself (it may name internals); the cause goes to the log under that id,
 * as gRPC's handlers answer INTERNAL and log.
 */
function internalError(err: unknown, req: IncomingMessage, logger: Logger): RestError {
  const correlationId = randomUUID();
  logger.error({ err, correlationId, method: req.method, url: req.url }, "internal error answering a REST request");
  return new RestError(
    500,
    "internal error",
    `internal error in ${req.method} ${(req.url ?? "/").split("?", 1)[0]}; the gateway's log has its cause under correlation id ${correlationId}`,
    correlationId,
  );
}

function methodNotAllowed(res: ServerResponse, req: IncomingMessage, allowed: string): void {
  res.setHeader("allow", allowed);
  sendJson(res, 405, { error: "method not allowed", cause: `${req.method} is not allowed here; use ${allowed}` });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function headerValue(req: IncomingMessage, key: string): string | undefined {
  const value = req.headers[key];
  return Array.isArray(value) ? value[0] : value;
}
