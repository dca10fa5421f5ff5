import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { Cancellation, Code, ConnectError, type Logger } from "../../shared/index.js";
import { presentedKey } from "../app-keys.js";
import type { Readiness } from "../readiness.js";
import type { InferAnswer, OipInference } from "./infer.js";
import { inferCallFromHttp } from "./infer-request.js";
import { modelConfig, modelMetadata, modelReadiness, repositoryIndex, SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from "./models.js";
import { encodeRaw } from "./tensors.js";

export interface OipRestOptions {
  inference: OipInference;
  readiness: () => Promise<Readiness>;
  /** Largest request body read (after decompression); a larger one is answered 413. */
  maxBodyBytes: number;
  /** Where the cause of an internal error goes (the client gets a correlation id to quote). */
  logger: Logger;
}

/** Whether a request path is one of the Open Inference Protocol's (`/v2`, `/v2/...`). */
export function isOipPath(url: string | undefined): boolean {
  const path = (url ?? "/").split("?", 1)[0] ?? "/";
  return path === "/v2" || path.startsWith("/v2/");
}

const MODEL_ROUTE = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer|\/config)?$/;

const REPOSITORY_LOAD_ROUTE = /^\/v2\/repository\/models\/[^/]+\/(load|unload)$/;

/**
 * Bodies too large, answered 413 (INVALID_ARGUMENT in the metrics). Marked in
 * a set, not by a subclass: ConnectError's instanceof matches any ConnectError.
 */
const tooLargeErrors = new WeakSet<ConnectError>();

function payloadTooLarge(message: string): ConnectError {
  const err = new ConnectError(message, Code.InvalidArgument);
  tooLargeErrors.add(err);
  return err;
}

/** The Open Inference Protocol's REST API (KServe v2), with Triton's binary tensor extension. */
export function createOipRestHandler(options: OipRestOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(options, req, res).catch((err: unknown) => sendError(res, req, err, options.logger));
  };
}

async function handle(options: OipRestOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
  if (path === "/v2" || path === "/v2/health/live" || path === "/v2/health/ready") {
    if (req.method !== "GET" && req.method !== "HEAD") return methodNotAllowed(res, req, "GET");
    if (path === "/v2") return sendJson(res, 200, { name: SERVER_NAME, version: SERVER_VERSION, extensions: SERVER_EXTENSIONS });
    if (path === "/v2/health/live") return sendJson(res, 200, { live: true });
    const readiness = await options.readiness();
    // OIP: 200 when ready, a 4xx when not.
    return readiness.ready ? sendJson(res, 200, { ready: true }) : sendJson(res, 400, { ready: false, error: readiness.cause });
  }
  if (path === "/v2/repository/index") {
    if (req.method !== "POST") return methodNotAllowed(res, req, "POST");
    const body = await readBody(req, options.maxBodyBytes);
    let readyOnly = false;
    if (body.length > 0) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString("utf8"));
      } catch (err) {
        throw new ConnectError(`the repository index request is not valid JSON: ${(err as Error).message}`, Code.InvalidArgument);
      }
      const ready = (parsed as { ready?: unknown } | null)?.ready;
      if (ready !== undefined && typeof ready !== "boolean") throw new ConnectError(`"ready" must be a boolean`, Code.InvalidArgument);
      readyOnly = ready === true;
    }
    return sendJson(res, 200, repositoryIndex(options.inference.view(), readyOnly));
  }
  if (REPOSITORY_LOAD_ROUTE.test(path)) {
    throw new ConnectError(
      "loading and unloading models through the Open Inference Protocol is not supported: a model here is a Clipper application; deploy and link models with `clipper model deploy` and `clipper link` (or clipper_admin)",
      Code.Unimplemented,
    );
  }
  const route = MODEL_ROUTE.exec(path);
  if (route === null) return sendJson(res, 404, { error: `no Open Inference Protocol route for ${req.method} ${path}` });
  const model = decodeSegment(route[1] ?? "", "model name");
  const version = route[2] === undefined ? "" : decodeSegment(route[2], "model version");
  const action = route[3];
  if (action === "/infer") {
    if (req.method !== "POST") return methodNotAllowed(res, req, "POST");
    const receivedAt = performance.now();
    const answer = await options.inference.infer(
      model,
      async () => inferCallFromHttp(model, version, await readBody(req, options.maxBodyBytes), headerValue(req, "inference-header-content-length")),
      { protocol: "oip-rest", key: presentedKey(keyHeaders(req)), signal: cancelOnClose(res), transportTimeoutMs: undefined, receivedAt },
    );
    return sendAnswer(res, answer);
  }
  if (req.method !== "GET" && req.method !== "HEAD") return methodNotAllowed(res, req, "GET");
  const app = options.inference.application(model);
  const view = options.inference.view();
  if (action === "/ready") {
    const readiness = modelReadiness(view, app, version);
    return readiness.ready ? sendJson(res, 200, { name: app.name, ready: true }) : sendJson(res, 400, { name: app.name, ready: false, error: readiness.cause });
  }
  if (action === "/config") return sendJson(res, 200, modelConfig(view, app, version));
  return sendJson(res, 200, modelMetadata(view, app, version));
}

function decodeSegment(segment: string, what: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ConnectError(`the ${what} in the path is not valid percent-encoding: ${segment}`, Code.InvalidArgument);
  }
}

/** The JSON answer, or with binary outputs Triton's layout: the JSON header, then each binary output's bytes in order. */
function sendAnswer(res: ServerResponse, answer: InferAnswer): void {
  const binaries: Uint8Array[] = [];
  const outputs = answer.outputs.map(({ tensor, binary }) => {
    const { name, datatype, shape } = tensor;
    if (!binary) return { name, datatype, shape, data: tensor.values };
    const raw = encodeRaw(tensor);
    binaries.push(raw);
    return { name, datatype, shape, parameters: { binary_data_size: raw.byteLength } };
  });
  const header = Buffer.from(
    JSON.stringify({ model_name: answer.modelName, model_version: answer.modelVersion, ...(answer.id === "" ? {} : { id: answer.id }), outputs }),
  );
  if (binaries.length === 0) {
    res.writeHead(200, { "content-type": "application/json", "content-length": header.byteLength });
    res.end(header);
    return;
  }
  const body = Buffer.concat([header, ...binaries]);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.byteLength, "inference-header-content-length": header.byteLength });
  res.end(body);
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

/** The whole body, decompressed when its Content-Encoding is gzip or deflate (as tritonclient can send); 413 past `limit` bytes either way. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => payloadTooLarge(`the request body exceeds the gateway's limit of ${limit} bytes (--max-body-bytes)`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const encoding = headerValue(req, "content-encoding")?.trim().toLowerCase();
  if (encoding === undefined || encoding === "" || encoding === "identity") return body;
  if (encoding !== "gzip" && encoding !== "deflate")
    throw new ConnectError(`Content-Encoding "${encoding}" is not supported: send gzip, deflate or none`, Code.InvalidArgument);
  try {
    return await (encoding === "gzip" ? gunzip : inflate)(body, { maxOutputLength: limit });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge();
    throw new ConnectError(`the ${encoding} body does not decompress: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

const STATUS_OF_CODE: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.FailedPrecondition]: 400,
  [Code.OutOfRange]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.ResourceExhausted]: 429,
  [Code.Canceled]: 499,
  [Code.Unimplemented]: 501,
  [Code.Unavailable]: 503,
  [Code.DeadlineExceeded]: 504,
};

/** OIP errors are `{"error": "..."}`; an internal error's cause goes to the log under a correlation id, not to the caller. */
function sendError(res: ServerResponse, req: IncomingMessage, err: unknown, logger: Logger): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (!req.complete) {
    // The body was not read (refused first): it must not be parsed as the next request.
    res.setHeader("connection", "close");
    req.resume();
  }
  const status = err instanceof ConnectError ? (tooLargeErrors.has(err) ? 413 : STATUS_OF_CODE[err.code]) : undefined;
  if (status === undefined || !(err instanceof ConnectError)) {
    const correlationId = randomUUID();
    logger.error({ err, correlationId, method: req.method, url: req.url }, "internal error answering an Open Inference Protocol request");
    sendJson(res, 500, { error: `internal error; the gateway's log has its cause under correlation id ${correlationId}` });
    return;
  }
  if (status === 429) res.setHeader("retry-after", "1");
  if (status === 401) res.setHeader("www-authenticate", 'Bearer realm="clipper"');
  sendJson(res, status, { error: err.rawMessage });
}

/** Cancelled when the client goes away before the answer. */
function cancelOnClose(res: ServerResponse): Cancellation {
  const cancellation = new Cancellation();
  res.once("close", () => {
    if (!res.writableFinished) cancellation.abort();
  });
  return cancellation;
}

function methodNotAllowed(res: ServerResponse, req: IncomingMessage, allowed: string): void {
  res.setHeader("allow", allowed);
  sendJson(res, 405, { error: `${req.method} is not allowed on ${(req.url ?? "/").split("?", 1)[0]}; use ${allowed}` });
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

function keyHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const name of ["authorization", "x-clipper-key"]) {
    const value = headerValue(req, name);
    if (value !== undefined) headers.set(name, value);
  }
  return headers;
}
