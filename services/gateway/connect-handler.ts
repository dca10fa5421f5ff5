import type http from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";

export interface ConnectHandlerOptions<S extends DescService> {
  service: S;
  impl: ServiceImpl<S>;
  /** Largest request body (after decompression). */
  readMaxBytes: number;
  /** How a JSON body's bytes become text (TextDecoder's decode by default). */
  decodeJsonText?: (bytes: Uint8Array) => string;
}

/** Whether the implementation was reached: connect's own failures before it are about the request's bytes. */
const invokedKey = createContextKey<{ invoked: boolean }>({ invoked: true }, { description: "clipper: the implementation ran" });
const markInvoked: Interceptor = (next) => (req) => {
  req.contextValues.get(invokedKey).invoked = true;
  return next(req);
};

const PARSE_BINARY = "parse binary: ";

/**
 * Connect and gRPC-Web (connect-node's universal handlers) for one service on
 * an HTTP/1.1 server, as connectNodeAdapter does, with one difference: a
 * request body that is not a valid protobuf message is the client's mistake,
 * answered INVALID_ARGUMENT (HTTP 400 for Connect) naming the message, as the
 * gateway's gRPC server answers it. connect-es answers it INTERNAL ("parse
 * binary: ..."), from inside its handlers, before any interceptor or the
 * implementation runs; so the answer of a unary call whose implementation never
 * ran is rewritten when it is that INTERNAL.
 */
export function createConnectHandler<S extends DescService>(options: ConnectHandlerOptions<S>): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    readMaxBytes: options.readMaxBytes,
    interceptors: [markInvoked],
    // connect-es reads a `textDecoder` from its JSON options (createJsonSerialization), though their type does not name it.
    ...(options.decodeJsonText === undefined
      ? {}
      : { jsonOptions: { textDecoder: { decode: options.decodeJsonText } } as unknown as NonNullable<ConnectRouterOptions["jsonOptions"]> }),
  });
  router.service(options.service, options.impl);
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);

  return (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (handler === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    const invoked = { invoked: false };
    const uReq = universalRequestFromNodeRequest(req, res, undefined, createContextValues().set(invokedKey, invoked));
    handler(uReq)
      .then((uRes) => (handler.method.methodKind === "unary" ? asClientError(uRes, invoked, handler.method.input.typeName) : uRes))
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch(() => {
        // The client went away, or the response could not be written: nothing left to answer.
        res.destroy();
      });
  };
}

/** The answer, with connect's INTERNAL for an undecodable request (the implementation never ran) made INVALID_ARGUMENT. */
async function asClientError(uRes: UniversalServerResponse, invoked: { invoked: boolean }, typeName: string): Promise<UniversalServerResponse> {
  if (invoked.invoked || uRes.body === undefined || uRes.header?.get("content-encoding") || uRes.header?.get("grpc-encoding")) return uRes;
  const reason = (message: string) => `the request is not a valid ${typeName} message: ${message.slice(PARSE_BINARY.length)}`;
  if (uRes.status === 500) {
    // Connect unary: the error is the JSON body.
    const chunks = await collect(uRes.body);
    const error = parseJson(Buffer.concat(chunks).toString("utf8"));
    if (error?.code !== "internal" || typeof error.message !== "string" || !error.message.startsWith(PARSE_BINARY)) {
      return { ...uRes, body: iterate(chunks) };
    }
    const body = Buffer.from(JSON.stringify({ code: "invalid_argument", message: reason(error.message) }));
    const header = new Headers(uRes.header);
    header.set("content-length", String(body.length));
    return { ...uRes, status: 400, header, body: iterate([body]) };
  }
  if (uRes.status === 200 && uRes.header?.get("content-type")?.startsWith("application/grpc-web") === true) {
    // gRPC-Web: the status is in a trailer frame of the body (flag 0x80, `key: value` lines).
    return { ...uRes, body: rewriteTrailer(uRes.body, reason) };
  }
  return uRes;
}

async function* rewriteTrailer(body: AsyncIterable<Uint8Array>, reason: (message: string) => string): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    const length = chunk.length >= 5 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).readUInt32BE(1) : -1;
    if (chunk[0] !== 0x80 || length !== chunk.length - 5) {
      yield chunk;
      continue;
    }
    const fields = new Map<string, string>();
    for (const line of Buffer.from(chunk.subarray(5)).toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const message = decodeURIComponent(fields.get("grpc-message") ?? "");
    if (fields.get("grpc-status") !== String(Code.Internal) || !message.startsWith(PARSE_BINARY)) {
      yield chunk;
      continue;
    }
    fields.set("grpc-status", String(Code.InvalidArgument));
    fields.set("grpc-message", encodeURIComponent(reason(message)));
    const text = Buffer.from([...fields].map(([k, v]) => `${k}: ${v}\r\n`).join(""), "utf8");
    const frame = Buffer.alloc(5 + text.length);
    frame[0] = 0x80;
    frame.writeUInt32BE(text.length, 1);
    text.copy(frame, 5);
    yield frame;
  }
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return chunks;
}

async function* iterate(chunks: Uint8Array[]): AsyncIterable<Uint8Array> {
  yield* chunks;
}

function parseJson(text: string): { code?: unknown; message?: unknown } | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === "object" ? (value as { code?: unknown; message?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}
