import { once, setMaxListeners } from "node:events";
import type { Readable } from "node:stream";
import type { DescFile, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ContextValues, createContextValues, createHandlerContext, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import type { Authorize } from "./auth.js";
import { Cancellation, type CancelSignal } from "./cancellation.js";
import { invalidArgument } from "./errors.js";
import { deserializer, grpcPath, metadataToHeaders, serializer } from "./grpc-codec.js";
import { createHealthImpl, HealthStatus } from "./health.js";
import type { Logger } from "./logger.js";
import { extractTraceContext, SpanKind, tracingEnabled, withSpan } from "./tracing.js";

/** A service descriptor with its implementation. */
export interface ServiceRegistration<S extends DescService = DescService> {
  service: S;
  impl: Partial<ServiceImpl<S>>;
}

export function registration<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ServiceRegistration {
  return { service, impl } as ServiceRegistration;
}

export interface GrpcServerOptions {
  host?: string;
  /**
   * 0 picks a free port. null binds nothing: the caller hands connections to
   * `server.createConnectionInjector()` (the gateway's one-port listener does).
   */
  port: number | null;
  services: ServiceRegistration[];
  /** Serve gRPC server reflection (v1 and v1alpha) for the registered services. */
  reflection?: boolean;
  logger?: Logger;
  credentials?: grpc.ServerCredentials;
  /** Largest request accepted, in bytes. */
  maxReceiveMessageBytes?: number;
  /** Runs before every handler with the call's metadata; a thrown ConnectError refuses the call. */
  authorize?: Authorize;
}

export interface RunningGrpcServer {
  readonly port: number;
  readonly address: string;
  readonly health: HealthStatus;
  readonly server: grpc.Server;
  /** Stops accepting calls, lets running ones finish for up to graceMs, then cuts them. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Starts a grpc-js server for connect-es style service implementations, with
 * grpc.health.v1 always and server reflection on request.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const host = options.host ?? "127.0.0.1";
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
    // Channelz stays on although nothing here reads it (about 4% of the gateway's CPU under load): with it
    // off, grpc-js's forceShutdown left open streams open, and a closed replica's batches waited for their
    // deadline instead of failing UNAVAILABLE (services/router/model-clients.integration.test.ts).
  });
  const health = new HealthStatus();
  const shutdown = new AbortController();
  // Every call in flight links its own signal to this one: many listeners are expected.
  setMaxListeners(0, shutdown.signal);
  const all = [...options.services, registration(Health, createHealthImpl(health, shutdown.signal))];
  for (const { service, impl } of all) {
    server.addService(serviceDefinition(service), handlers(service, impl, shutdown.signal, options.logger, options.authorize));
    health.set(service.typeName, "SERVING");
  }
  health.set("", "SERVING");
  if (options.reflection) {
    // @grpc/reflection reads only `fileDescriptorProtos` from the package definition.
    const pkg = reflectionPackage(all.map((r) => r.service)) as unknown as ConstructorParameters<typeof ReflectionService>[0];
    new ReflectionService(pkg, {
      services: all.map((r) => r.service.typeName),
    }).addToServer(server);
  }
  const port =
    options.port === null
      ? 0
      : await new Promise<number>((resolve, reject) =>
          server.bindAsync(
            `${host.includes(":") ? `[${host}]` : host}:${options.port}`,
            options.credentials ?? grpc.ServerCredentials.createInsecure(),
            (err, bound) => (err ? reject(err) : resolve(bound)),
          ),
        );
  return {
    port,
    address: `${host}:${port}`,
    health,
    server,
    close: async (graceMs = 2000) => {
      health.shutdown();
      shutdown.abort();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

export function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    def[method.name] = {
      path: grpcPath(method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input as DescMessage) as grpc.serialize<unknown>,
      requestDeserialize: tolerantDeserializer(method.input as DescMessage),
      responseSerialize: serializer(method.output as DescMessage) as grpc.serialize<unknown>,
      responseDeserialize: deserializer(method.output as DescMessage),
      originalName: method.localName,
    };
  }
  return def;
}

type AnyCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>;
type AnyImpl = (input: unknown, ctx: HandlerContext) => unknown;

function handlers(
  service: DescService,
  impl: Partial<ServiceImpl<DescService>>,
  shutdownSignal: AbortSignal,
  logger: Logger | undefined,
  authorize: Authorize | undefined,
): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, AnyImpl | undefined>)[method.localName];
    const authorized: AnyImpl | undefined =
      handler === undefined || authorize === undefined
        ? handler
        : (input, ctx) => {
            authorize(method, ctx.requestHeader);
            return handler(input, ctx);
          };
    const fn = authorized === undefined || method.methodKind !== "unary" ? authorized : traced(method, authorized);
    const context = (call: AnyCall) => handlerContext(service, method, call, shutdownSignal);
    const toStatus = (err: unknown) => serviceError(err, method, logger);
    if (fn === undefined) {
      out[method.name] = unimplemented(method);
      continue;
    }
    switch (method.methodKind) {
      case "unary":
        out[method.name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          const ctx = new UnaryCallContext(service, method, call, shutdownSignal);
          Promise.resolve()
            .then(() => fn(decoded(call.request), ctx))
            .then(
              (res) => callback(null, res, ctx.trailerMetadata()),
              (err) => callback(toStatus(err)),
            )
            .finally(() => ctx.finish());
        }) as grpc.handleUnaryCall<unknown, unknown>;
        break;
      case "client_streaming":
        out[method.name] = ((call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          const ctx = context(call);
          Promise.resolve()
            .then(() => fn(decodedStream(call), ctx))
            .then(
              (res) => callback(null, res, trailers(ctx)),
              (err) => callback(toStatus(err)),
            )
            .finally(() => ctx.abort());
        }) as grpc.handleClientStreamingCall<unknown, unknown>;
        break;
      case "server_streaming":
      case "bidi_streaming":
        out[method.name] = ((call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) => {
          const ctx = context(call);
          void (async () => {
            try {
              const input =
                method.methodKind === "server_streaming"
                  ? decoded((call as grpc.ServerWritableStream<unknown, unknown>).request)
                  : decodedStream(call as grpc.ServerDuplexStream<unknown, unknown>);
              for await (const message of fn(input, ctx) as AsyncIterable<unknown>) {
                if (ctx.signal.aborted) break;
                if (!call.write(message)) await once(call, "drain", { signal: ctx.signal });
              }
              call.end(trailers(ctx));
            } catch (err) {
              if (!call.cancelled) call.emit("error", toStatus(err));
            } finally {
              ctx.abort();
            }
          })();
        }) as grpc.handleServerStreamingCall<unknown, unknown>;
        break;
    }
  }
  return out;
}

/**
 * A unary handler run inside a SERVER span continuing the caller's W3C trace
 * context (`traceparent` metadata). Streams are not traced: they live for
 * minutes (WatchConfig, DeployModel) and would only blur traces.
 */
function traced(method: DescMethod, fn: AnyImpl): AnyImpl {
  const name = `${method.parent.typeName}/${method.name}`;
  const attributes = { "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name };
  return (input, ctx) =>
    // With tracing off (the default) not even the request's headers are read: this is every unary call's path.
    tracingEnabled()
      ? withSpan(name, { kind: SpanKind.SERVER, attributes, parent: extractTraceContext(ctx.requestHeader) }, async () => fn(input, ctx))
      : fn(input, ctx);
}

/**
 * What a request that is not a valid protobuf message decodes to. grpc-js
 * would answer INTERNAL for a throwing deserializer; a client's bad bytes are
 * its mistake, so the handler wrapper answers INVALID_ARGUMENT instead.
 */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

function tolerantDeserializer(desc: DescMessage): (bytes: Buffer) => unknown {
  const decode = deserializer(desc);
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (err) {
      return new UndecodableRequest(`the request is not a valid ${desc.typeName} message: ${(err as Error).message}`);
    }
  };
}

function decoded(request: unknown): unknown {
  if (request instanceof UndecodableRequest) throw invalidArgument(request.reason);
  return request;
}

async function* decodedStream(requests: Readable): AsyncIterable<unknown> {
  // Not the default iterator: it destroys the whole call once the requests end, and a bidi call's
  // answers to the last requests must still go out after the client has half-closed.
  for await (const request of requests.iterator({ destroyOnReturn: false })) yield decoded(request);
}

function unimplemented(method: DescMethod): grpc.UntypedHandleCall {
  const status = { code: grpc.status.UNIMPLEMENTED, details: `${method.parent.typeName}.${method.name} is not implemented` };
  if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
    return ((_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(status)) as grpc.handleUnaryCall<unknown, unknown>;
  }
  return ((call: grpc.ServerWritableStream<unknown, unknown>) => call.emit("error", status)) as grpc.handleServerStreamingCall<unknown, unknown>;
}

/**
 * What the query path of a handler watches to learn that its call is over
 * early (client cancel, deadline, forced shutdown): a unary gRPC call's cheap
 * Cancellation, or the context's AbortSignal on every other path.
 */
export function cancelSignalOf(ctx: HandlerContext): CancelSignal {
  return ctx instanceof UnaryCallContext ? ctx.cancellation : ctx.signal;
}

/**
 * The HandlerContext of a unary gRPC call, built for its per-call cost:
 * connect's createHandlerContext (three AbortControllers, four Headers, a
 * ConnectError with its stack on every call's end, since grpc-js reports each
 * closed stream as 'cancelled') took about 15% of the gateway's CPU under ghz.
 * Here the signal, the headers and the context values are made only when the
 * implementation reads them; the query path watches `cancellation` instead.
 * grpc-js reports a client's cancel, the deadline passing and a forced
 * shutdown alike as the call's 'cancelled' event.
 */
class UnaryCallContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly cancellation = new Cancellation();
  private readonly deadlineMs: number;
  private controller: AbortController | undefined;
  private request: Headers | undefined;
  private response: Headers | undefined;
  private trailer: Headers | undefined;
  private contextValues: ContextValues | undefined;
  private finished = false;
  private readonly onCancelled = () => this.cancel(new ConnectError("the client cancelled the call", Code.Canceled));
  private readonly onShutdown = () => this.controller?.abort(this.shutdownSignal.reason);

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    private readonly call: grpc.ServerUnaryCall<unknown, unknown>,
    private readonly shutdownSignal: AbortSignal,
  ) {
    const deadline = call.getDeadline();
    this.deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    call.once("cancelled", this.onCancelled);
  }

  get url(): string {
    return grpcPath(this.method);
  }

  readonly timeoutMs = (): number | undefined => (Number.isFinite(this.deadlineMs) ? Math.max(0, this.deadlineMs - Date.now()) : undefined);

  /** An AbortSignal for implementations that need one (connect-es clients, events.once): aborted on cancel, deadline and shutdown. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.finished) this.controller.abort();
      else if (this.cancellation.aborted) this.controller.abort(new ConnectError("the client cancelled the call", Code.Canceled));
      else if (this.shutdownSignal.aborted) this.controller.abort(this.shutdownSignal.reason);
      else this.shutdownSignal.addEventListener("abort", this.onShutdown, { once: true });
    }
    return this.controller.signal;
  }

  get requestHeader(): Headers {
    this.request ??= metadataToHeaders(this.call.metadata);
    return this.request;
  }

  get responseHeader(): Headers {
    this.response ??= new Headers();
    return this.response;
  }

  get responseTrailer(): Headers {
    this.trailer ??= new Headers();
    return this.trailer;
  }

  get values(): ContextValues {
    this.contextValues ??= createContextValues();
    return this.contextValues;
  }

  /** The trailers the implementation set, as gRPC metadata; undefined (nothing to send) when it set none. */
  trailerMetadata(): grpc.Metadata | undefined {
    return this.trailer === undefined ? undefined : trailers(this);
  }

  /** The call is answered: stop watching it, and end the signal if one was handed out (as connect's ctx.abort()). */
  finish(): void {
    this.finished = true;
    this.call.off("cancelled", this.onCancelled);
    if (this.controller !== undefined) {
      this.shutdownSignal.removeEventListener("abort", this.onShutdown);
      this.controller.abort();
    }
  }

  private cancel(reason: ConnectError): void {
    this.cancellation.abort();
    this.controller?.abort(reason);
  }
}

function handlerContext(service: DescService, method: DescMethod, call: AnyCall, shutdownSignal: AbortSignal) {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const requestAbort = new AbortController();
  (call as grpc.ServerUnaryCall<unknown, unknown>).once("cancelled", () =>
    requestAbort.abort(new ConnectError("the client cancelled the call", Code.Canceled)),
  );
  return createHandlerContext({
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: grpcPath(method),
    ...(Number.isFinite(deadlineMs) ? { timeoutMs: Math.max(0, deadlineMs - Date.now()) } : {}),
    shutdownSignal,
    requestSignal: requestAbort.signal,
    requestHeader: metadataToHeaders(call.metadata),
  });
}

function trailers(ctx: HandlerContext): grpc.Metadata | undefined {
  let md: grpc.Metadata | undefined;
  ctx.responseTrailer.forEach((value, key) => {
    md ??= new grpc.Metadata();
    md.add(key, value);
  });
  return md;
}

/** One error type on the wire: ConnectError codes map 1:1 to gRPC status codes; anything else is Internal. */
function serviceError(err: unknown, method: DescMethod, logger: Logger | undefined): Partial<grpc.StatusObject> {
  if (err instanceof ConnectError) {
    return { code: err.code as number as grpc.status, details: err.rawMessage };
  }
  logger?.error({ err, method: grpcPath(method) }, "unexpected error in handler");
  return { code: grpc.status.INTERNAL, details: `internal error in ${method.name}` };
}

/** The shape @grpc/reflection reads: objects carrying serialized FileDescriptorProtos. */
function reflectionPackage(services: DescService[]): Record<string, { fileDescriptorProtos: Buffer[] }> {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.name)) return;
    files.set(file.name, file);
    file.dependencies.forEach(visit);
  };
  for (const s of services) visit(s.file);
  const protos = [...files.values()].map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
  return { all: { fileDescriptorProtos: protos } };
}
