// A small OTLP/HTTP trace receiver for tests: it accepts protobuf
// ExportTraceServiceRequest bodies on POST /v1/traces and decodes the few
// fields the tests read with a hand-written wire-format reader (the generated
// OTLP types are not a dependency of this project).
import http from "node:http";

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  events: { name: string; attributes: Record<string, string | number | boolean> }[];
  links: { traceId: string; spanId: string }[];
  statusCode: number;
}

type Field = { no: number; wire: number; value: bigint | Uint8Array };

function* fields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buf[pos++];
      if (byte === undefined) throw new Error("truncated varint");
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { no, wire, value: varint() };
    else if (wire === 1) {
      const v = new DataView(buf.buffer, buf.byteOffset + pos, 8).getBigUint64(0, true);
      pos += 8;
      yield { no, wire, value: v };
    } else if (wire === 2) {
      const len = Number(varint());
      yield { no, wire, value: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === 5) {
      pos += 4;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

const text = (v: bigint | Uint8Array) => Buffer.from(v as Uint8Array).toString("utf8");
const hex = (v: bigint | Uint8Array) => Buffer.from(v as Uint8Array).toString("hex");

function anyValue(buf: Uint8Array): string | number | boolean {
  for (const f of fields(buf)) {
    if (f.no === 1) return text(f.value);
    if (f.no === 2) return f.value !== 0n;
    if (f.no === 3) return Number(BigInt.asIntN(64, f.value as bigint));
    if (f.no === 4) return new DataView(new BigUint64Array([f.value as bigint]).buffer).getFloat64(0, true);
  }
  return "";
}

function keyValues(list: Uint8Array[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list) {
    let key = "";
    let value: string | number | boolean = "";
    for (const f of fields(kv)) {
      if (f.no === 1) key = text(f.value);
      if (f.no === 2) value = anyValue(f.value as Uint8Array);
    }
    out[key] = value;
  }
  return out;
}

function decodeSpan(buf: Uint8Array, service: string): ReceivedSpan {
  const span: ReceivedSpan = { service, traceId: "", spanId: "", parentSpanId: "", name: "", kind: 0, attributes: {}, events: [], links: [], statusCode: 0 };
  const attrs: Uint8Array[] = [];
  for (const f of fields(buf)) {
    if (f.no === 1) span.traceId = hex(f.value);
    else if (f.no === 2) span.spanId = hex(f.value);
    else if (f.no === 4) span.parentSpanId = hex(f.value);
    else if (f.no === 5) span.name = text(f.value);
    else if (f.no === 6) span.kind = Number(f.value);
    else if (f.no === 9) attrs.push(f.value as Uint8Array);
    else if (f.no === 11) {
      let name = "";
      const eventAttrs: Uint8Array[] = [];
      for (const e of fields(f.value as Uint8Array)) {
        if (e.no === 2) name = text(e.value);
        if (e.no === 3) eventAttrs.push(e.value as Uint8Array);
      }
      span.events.push({ name, attributes: keyValues(eventAttrs) });
    } else if (f.no === 13) {
      const link = { traceId: "", spanId: "" };
      for (const l of fields(f.value as Uint8Array)) {
        if (l.no === 1) link.traceId = hex(l.value);
        if (l.no === 2) link.spanId = hex(l.value);
      }
      span.links.push(link);
    } else if (f.no === 15) {
      for (const s of fields(f.value as Uint8Array)) if (s.no === 3) span.statusCode = Number(s.value);
    }
  }
  span.attributes = keyValues(attrs);
  return span;
}

/** Decodes an ExportTraceServiceRequest into its spans, each with its resource's service.name. */
export function decodeExportTraceRequest(body: Uint8Array): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of fields(body)) {
    if (rs.no !== 1) continue;
    let service = "";
    const scopeSpans: Uint8Array[] = [];
    for (const f of fields(rs.value as Uint8Array)) {
      if (f.no === 1) {
        const attrs: Uint8Array[] = [];
        for (const r of fields(f.value as Uint8Array)) if (r.no === 1) attrs.push(r.value as Uint8Array);
        service = String(keyValues(attrs)["service.name"] ?? "");
      }
      if (f.no === 2) scopeSpans.push(f.value as Uint8Array);
    }
    for (const ss of scopeSpans) for (const f of fields(ss)) if (f.no === 2) spans.push(decodeSpan(f.value as Uint8Array, service));
  }
  return spans;
}

export interface OtlpReceiver {
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/traces") {
        try {
          spans.push(...decodeExportTraceRequest(Buffer.concat(chunks)));
        } catch (err) {
          res.writeHead(400).end(String(err));
          return;
        }
        // An empty ExportTraceServiceResponse.
        res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const TRACING_VARS = ["OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_SERVICE_NAME"] as const;

/**
 * Turns tracing on for the services a test starts next (TestSystem hands
 * process.env to them, and the container-manager hands OTEL_* to replicas),
 * exporting to `receiver` every 100 ms. Returns what puts the variables back.
 */
export function exportTracesTo(receiver: OtlpReceiver): () => void {
  const saved = new Map(TRACING_VARS.map((v) => [v, process.env[v]]));
  process.env.OTEL_TRACES_EXPORTER = "otlp";
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
  process.env.OTEL_BSP_SCHEDULE_DELAY = "100";
  delete process.env.OTEL_SERVICE_NAME;
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
