import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  type Link,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

/** Attribute names every component uses, so a trace reads the same end to end. */
export const TraceAttributes = {
  application: "clipper.application",
  model: "clipper.model",
  version: "clipper.model_version",
  queryId: "clipper.query_id",
  inputs: "clipper.inputs",
  batchSize: "clipper.batch_size",
  replica: "clipper.replica",
  cacheHit: "clipper.cache_hit",
  isDefault: "clipper.default",
  defaultReason: "clipper.default_reason",
  queueWaitSeconds: "clipper.queue_wait_seconds",
} as const;

export interface RunningTracing {
  /** Exports what is buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

/**
 * Turns tracing on from the standard OpenTelemetry variables. Off unless
 * OTEL_TRACES_EXPORTER names an exporter ("otlp" or "console"): the OTel
 * default would be "otlp", but a Clipper started with no collector should not
 * retry exports forever. The OTLP exporter speaks HTTP/protobuf and reads
 * OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
 * OTEL_EXPORTER_OTLP_HEADERS itself; the service name comes from
 * OTEL_SERVICE_NAME, else `clipper-<service>`. Returns undefined when off.
 */
export function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): RunningTracing | undefined {
  if ((env.OTEL_SDK_DISABLED ?? "").toLowerCase() === "true") return undefined;
  const names = (env.OTEL_TRACES_EXPORTER ?? "none")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "" && s !== "none");
  if (names.length === 0) return undefined;
  const processors = names.map((name) => {
    const exporter = exporterFor(name);
    // The console exporter is for a person watching: print each span at once.
    return name === "console" ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter, { scheduledDelayMillis: batchDelayMs(env) });
  });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME || `clipper-${service}`, "service.namespace": "clipper" }),
    spanProcessors: processors,
  });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  tracingOn = true;
  return {
    shutdown: () => {
      tracingOn = false;
      return provider.shutdown();
    },
  };
}

function exporterFor(name: string): SpanExporter {
  if (name === "otlp") return new OTLPTraceExporter();
  if (name === "console") return new ConsoleSpanExporter();
  throw new Error(`OTEL_TRACES_EXPORTER: unsupported exporter "${name}" (supported: otlp, console, none)`);
}

function batchDelayMs(env: NodeJS.ProcessEnv): number {
  const raw = Number(env.OTEL_BSP_SCHEDULE_DELAY);
  return Number.isFinite(raw) && raw > 0 ? raw : 5000;
}

/** Whether startTracing registered a provider: the hot path skips span bookkeeping when not. */
let tracingOn = false;

export function tracingEnabled(): boolean {
  return tracingOn;
}

/** What `withSpan` hands `fn` with tracing off: records nothing. */
const NOT_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

export function tracer(): Tracer {
  return trace.getTracer("clipper");
}

/** A carrier for W3C trace context: the headers of a call (`traceparent`, `tracestate`). */
export interface TraceCarrier {
  get(key: string): string | null | undefined;
  set(key: string, value: string): void;
}

/** The context of the incoming call's `traceparent` (the active context if it has none). */
export function extractTraceContext(carrier: Pick<TraceCarrier, "get">, base: Context = context.active()): Context {
  // With tracing off nothing would use it: skip the parsing on every call.
  if (!tracingOn) return base;
  return propagation.extract(base, carrier, {
    get: (c, key) => c.get(key) ?? undefined,
    keys: () => ["traceparent", "tracestate"],
  });
}

/** Writes the active span's `traceparent` into an outgoing call's headers. */
export function injectTraceContext(carrier: Pick<TraceCarrier, "set">, ctx: Context = context.active()): void {
  if (!tracingOn) return;
  propagation.inject(ctx, carrier, { set: (c, key, value) => c.set(key, value) });
}

/** The W3C trace context a stream message carries in its own fields (QueryStream, PredictStream). */
export interface TraceFields {
  traceparent: string;
  tracestate: string;
}

const NO_TRACE_FIELDS: TraceFields = Object.freeze({ traceparent: "", tracestate: "" });

/** The active span's trace context as message fields (empty with tracing off or no span). */
export function traceFields(): TraceFields {
  if (!tracingOn) return NO_TRACE_FIELDS;
  const fields = { traceparent: "", tracestate: "" };
  injectTraceContext({
    set: (key, value) => {
      if (key === "traceparent" || key === "tracestate") fields[key] = value;
    },
  });
  return fields;
}

/** The context a message's trace fields continue, or undefined when it carries none. */
export function contextOfTraceFields(fields: TraceFields): Context | undefined {
  if (fields.traceparent === "") return undefined;
  return extractTraceContext({
    get: (key) => (key === "traceparent" ? fields.traceparent : key === "tracestate" ? fields.tracestate || undefined : undefined),
  });
}

/**
 * Runs `fn` in a new span that ends when `fn` settles; a thrown error marks
 * the span failed. With tracing off `fn` runs at once with a span that
 * records nothing (no context switch: this is on every query's path).
 */
export function withSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; links?: Link[]; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  if (!tracingOn) return fn(NOT_RECORDING);
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(
    name,
    {
      kind: options.kind ?? SpanKind.INTERNAL,
      ...(options.attributes ? { attributes: options.attributes } : {}),
      ...(options.links ? { links: options.links } : {}),
    },
    parent,
  );
  return context
    .with(trace.setSpan(parent, span), () => fn(span))
    .then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        failSpan(span, err);
        span.end();
        throw err;
      },
    );
}

export function failSpan(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/** The active span's ids for log lines, when a span is recording. */
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  const span = trace.getActiveSpan();
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return undefined;
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

export type { Attributes as SpanAttributes, Context as TraceContext, Link as SpanLink, Span };
export { context as traceContext, SpanKind, SpanStatusCode, trace };
