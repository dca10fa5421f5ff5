import { type Attributes, context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";

/** W3C trace context as a call's metadata or a stream message's fields carry it ("" when absent). */
export interface TraceFields {
  traceparent: string;
  tracestate: string;
}

export interface RunningTracing {
  /** Exports what is buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

/** Whether startTracing registered a provider: with tracing off no span is made at all (the batch path stays lean). */
let tracingOn = false;

/**
 * Turns tracing on from the standard OpenTelemetry variables, as the services
 * do: off unless OTEL_TRACES_EXPORTER names "otlp" (HTTP/protobuf, endpoint and
 * headers from OTEL_EXPORTER_OTLP_*) or "console"; the service name is
 * OTEL_SERVICE_NAME, else `clipper-<service>`. The OpenTelemetry SDK packages
 * are optional peer dependencies: without them this warns on stderr and the
 * model serves untraced. Returns undefined when tracing is off.
 */
export async function startTracing(service: string, env: Readonly<Record<string, string | undefined>> = process.env): Promise<RunningTracing | undefined> {
  if ((env.OTEL_SDK_DISABLED ?? "").toLowerCase() === "true") return undefined;
  const names = (env.OTEL_TRACES_EXPORTER ?? "")
    .toLowerCase()
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "" && s !== "none");
  if (names.length === 0) return undefined;
  const unsupported = names.find((name) => name !== "otlp" && name !== "console");
  if (unsupported !== undefined) throw new Error(`OTEL_TRACES_EXPORTER: unsupported exporter "${unsupported}" (supported: otlp, console, none)`);
  let otel: Awaited<ReturnType<typeof loadOpenTelemetry>>;
  try {
    otel = await loadOpenTelemetry();
  } catch (err) {
    process.stderr.write(
      `tracing is off: OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER} needs the optional packages ${OPTIONAL_PACKAGES.join(" ")} (${(err as Error).message})\n`,
    );
    return undefined;
  }
  const delay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
  const provider = new otel.NodeTracerProvider({
    resource: otel.resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME || `clipper-${service}`, "service.namespace": "clipper" }),
    // The console exporter is for a person watching: each span at once.
    spanProcessors: names.map((name) =>
      name === "console"
        ? new otel.SimpleSpanProcessor(new otel.ConsoleSpanExporter())
        : new otel.BatchSpanProcessor(new otel.OTLPTraceExporter(), { scheduledDelayMillis: Number.isFinite(delay) && delay > 0 ? delay : 5000 }),
    ),
  });
  provider.register({ propagator: new otel.W3CTraceContextPropagator() });
  tracingOn = true;
  return {
    shutdown: () => {
      tracingOn = false;
      return provider.shutdown();
    },
  };
}

const OPTIONAL_PACKAGES = [
  "@opentelemetry/sdk-trace-node@2.12.0",
  "@opentelemetry/exporter-trace-otlp-proto@0.223.1",
  "@opentelemetry/resources@2.12.0",
  "@opentelemetry/core@2.12.0",
];

async function loadOpenTelemetry() {
  const [node, otlp, resources, core] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/core"),
  ]);
  return {
    NodeTracerProvider: node.NodeTracerProvider,
    BatchSpanProcessor: node.BatchSpanProcessor,
    SimpleSpanProcessor: node.SimpleSpanProcessor,
    ConsoleSpanExporter: node.ConsoleSpanExporter,
    OTLPTraceExporter: otlp.OTLPTraceExporter,
    resourceFromAttributes: resources.resourceFromAttributes,
    W3CTraceContextPropagator: core.W3CTraceContextPropagator,
  };
}

const fieldsGetter = {
  get: (fields: TraceFields, key: string) => (key === "traceparent" || key === "tracestate" ? fields[key] || undefined : undefined),
  keys: () => ["traceparent", "tracestate"],
};

/**
 * Runs `fn` in a SERVER span continuing the caller's trace (`parent`'s
 * traceparent, else the active context); the span ends when `fn` settles and
 * is marked failed when it throws. With tracing off `fn` just runs.
 */
export function inServerSpan<T>(name: string, parent: TraceFields | undefined, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  if (!tracingOn) return fn();
  const base = parent !== undefined && parent.traceparent !== "" ? propagation.extract(context.active(), parent, fieldsGetter) : context.active();
  const span = trace.getTracer("clipper").startSpan(name, { kind: SpanKind.SERVER, attributes }, base);
  return context.with(trace.setSpan(base, span), fn).then(
    (value) => {
      span.end();
      return value;
    },
    (err: unknown) => {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      span.end();
      throw err;
    },
  );
}

/** Adds attributes to the span of the batch being answered (nothing with tracing off). */
export function setSpanAttributes(attributes: Attributes): void {
  if (tracingOn) trace.getActiveSpan()?.setAttributes(attributes);
}
