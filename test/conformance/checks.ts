import { create, toBinary } from "@bufbuild/protobuf";
import { InputsSchema, InputType, type Output } from "../../gen/clipper/common/v1/data_pb.js";
import { type GetMetadataResponse, PredictRequestSchema } from "../../gen/clipper/model/v1/model_service_pb.js";
import type { Container } from "./container.js";
import {
  type Directive,
  directive,
  firstMismatch,
  LOADED_LINE,
  LOADING_LINE,
  mismatch,
  pack,
  sampleInputs,
  short,
  typeName,
  typicalBatch,
  type Value,
} from "./contract.js";
import { CallError, type ModelConnection, ServingStatus, Status, statusName } from "./wire.js";

// The checks. Each one runs against a live container and answers a one-line detail when it
// passes; it throws Failure (or any error) when the container breaks the contract, and Skip when
// the container does not offer an optional part of it.

export class Failure extends Error {
  override name = "Failure";
}

export class Skip extends Error {
  override name = "Skip";
}

export interface KitSettings {
  name: string;
  version: string;
  /** How long the conformance model takes to load in the readiness check. */
  loadMs: number;
  /** The largest message the container is expected to accept; the oversized check sends more. */
  maxMessageBytes: number;
  /** Whether sample strings may hold NUL (false for runtimes whose strings cannot: R). */
  nulInStrings: boolean;
  /** The batch size sent as "maximum" to a container that declares no limit. */
  maxBatch: number;
  startTimeoutMs: number;
  /** The container-manager's time between SIGTERM and SIGKILL: a container must be gone by then. */
  stopGraceMs: number;
}

export interface CheckContext {
  type: InputType;
  wire: ModelConnection;
  container: Container;
  settings: KitSettings;
  metadata?: GetMetadataResponse;
}

export interface Check {
  id: string;
  /** What it checks, for --list and the docs. */
  title: string;
  /** Run once, on the first input type's container, rather than on each. */
  once: boolean;
  run(ctx: CheckContext): Promise<string>;
}

const samples = (ctx: CheckContext, type: InputType, count: number, seed?: number): Value[] => sampleInputs(type, count, seed, ctx.settings.nulInStrings);

/** Over a protocol without streams (Connect on HTTP/1.1), a stream-only check is skipped, saying why. */
function needsStreams(ctx: CheckContext): void {
  if (!ctx.wire.streams) throw new Skip("PredictStream needs HTTP/2 streams: not offered over the Connect protocol on HTTP/1.1");
}

const NO_STREAM_NOTE = "(no PredictStream over Connect)";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Resolves undefined after `ms`, without keeping the process alive: the losing side of a race. */
const timeout = (ms: number) => new Promise<undefined>((resolve) => setTimeout(resolve, ms, undefined).unref());

/** The call's error; a Failure when it succeeded. */
async function callError(result: Promise<unknown>, what: string): Promise<CallError> {
  try {
    await result;
  } catch (err) {
    if (err instanceof CallError) return err;
    throw err;
  }
  throw new Failure(`${what} succeeded`);
}

function expectAnswers(values: readonly Value[], outputs: readonly Output[], what: string): void {
  const why = firstMismatch(values, outputs);
  if (why !== undefined) throw new Failure(`${what}: ${why}`);
}

/** The container still answers a small batch; returns how long it took. */
async function alive(ctx: CheckContext, after: string, timeoutMs = 10_000): Promise<number> {
  const values = samples(ctx, ctx.type, 3, 7);
  const started = performance.now();
  try {
    expectAnswers(values, await ctx.wire.predict(pack(ctx.type, values), { timeoutMs }), `a batch after ${after}`);
  } catch (err) {
    if (err instanceof Failure) throw err;
    throw new Failure(`after ${after} the container no longer answers (${err instanceof Error ? err.message : String(err)}; ${ctx.container.describeExit()})`);
  }
  return Math.round(performance.now() - started);
}

const otherType = (type: InputType) => (type === InputType.STRINGS ? InputType.DOUBLES : InputType.STRINGS);

function withDirective(ctx: CheckContext, d: Directive): Value[] {
  const [a, b] = samples(ctx, ctx.type, 2, 3);
  return [a!, directive(ctx.type, d), b!];
}

const isError = (o: Output | undefined) => o?.result.case === "error" && o.result.value !== "";

/** A batch whose inputs must all be errors, the container going on afterwards. */
async function allErrors(ctx: CheckContext, d: Directive, what: string): Promise<string> {
  const outputs = await ctx.wire.predict(pack(ctx.type, withDirective(ctx, d)), { timeoutMs: 10_000 });
  if (outputs.length !== 3) throw new Failure(`${outputs.length} outputs for 3 inputs (${what})`);
  const bad = outputs.findIndex((o) => !isError(o));
  if (bad >= 0) throw new Failure(`${what}: output ${bad} is not an error: ${short(JSON.stringify(outputs[bad]?.result))}`);
  await alive(ctx, what);
  const first = outputs[0]!.result;
  return `every input an error ("${short(first.case === "error" ? first.value : "", 70)}"); serving on`;
}

export const CHECKS: readonly Check[] = [
  {
    id: "health",
    title: 'grpc.health.v1 Check: "" and clipper.model.v1.ModelService SERVING, an unknown service NOT_FOUND; Watch answers SERVING',
    once: false,
    async run({ wire }) {
      for (const service of ["", "clipper.model.v1.ModelService"]) {
        const status = await wire.health(service, { timeoutMs: 5000 });
        if (status !== ServingStatus.SERVING) throw new Failure(`Check("${service}") is ${ServingStatus[status]}`);
      }
      const unknown = await callError(wire.health("no.such.Service", { timeoutMs: 5000 }), 'Check("no.such.Service")');
      if (unknown.code !== Status.NOT_FOUND) throw new Failure(`Check("no.such.Service") is ${statusName(unknown.code)}, expected NOT_FOUND`);
      if (!wire.streams) return 'Check "" and ModelService SERVING, unknown NOT_FOUND (no Watch over Connect)';
      const watched = await wire.watchFirst("", 5000);
      if (watched !== ServingStatus.SERVING) throw new Failure(`Watch("") answers ${ServingStatus[watched]}`);
      return 'Check "" and ModelService SERVING, unknown NOT_FOUND, Watch SERVING';
    },
  },
  {
    id: "metadata",
    title: "GetMetadata names the model, version and input type the container was started with, and its runtime; CheckReadiness is ready",
    once: false,
    async run(ctx) {
      const m = await ctx.wire.metadata({ timeoutMs: 5000 });
      const wrong: string[] = [];
      if (m.modelName !== ctx.settings.name) wrong.push(`model_name "${m.modelName}" (expected "${ctx.settings.name}")`);
      if (m.modelVersion !== ctx.settings.version) wrong.push(`model_version "${m.modelVersion}" (expected "${ctx.settings.version}")`);
      if (m.inputType !== ctx.type) wrong.push(`input_type ${typeName(m.inputType)} (expected ${typeName(ctx.type)})`);
      if (m.runtime.trim() === "") wrong.push("runtime is empty");
      if (wrong.length > 0) throw new Failure(wrong.join("; "));
      const r = await ctx.wire.readiness({ timeoutMs: 5000 });
      if (!r.ready) throw new Failure(`CheckReadiness is not ready: "${r.message}"`);
      ctx.metadata = m;
      return `runtime "${m.runtime}", max_batch_size ${m.maxBatchSize}; CheckReadiness ready`;
    },
  },
  {
    id: "predict",
    title: "Predict answers a batch of inputs of every shape (long, short, edge values) exactly, one output per input in order",
    once: false,
    async run(ctx) {
      const values = typicalBatch(ctx.type, ctx.settings.nulInStrings);
      expectAnswers(values, await ctx.wire.predict(pack(ctx.type, values), { timeoutMs: 10_000, batchId: 1n }), "Predict");
      return `${values.length} inputs answered exactly`;
    },
  },
  {
    id: "predict-stream",
    title: "PredictStream answers a batch by its batch_id, and ends the stream OK after the caller half-closes",
    once: false,
    async run(ctx) {
      needsStreams(ctx);
      const values = typicalBatch(ctx.type, ctx.settings.nulInStrings);
      const stream = ctx.wire.stream();
      stream.send(77n, pack(ctx.type, values));
      try {
        await stream.waitForAnswers(1, 10_000);
      } finally {
        stream.end();
      }
      const answer = stream.answers[0]!;
      if (answer.batchId !== 77n) throw new Failure(`the answer's batch_id is ${answer.batchId}, expected 77`);
      if (answer.errorCode !== 0) throw new Failure(`the batch failed: ${statusName(answer.errorCode)} ${answer.errorMessage}`);
      expectAnswers(values, answer.outputs, "PredictStream");
      const ended = await Promise.race([stream.ended, timeout(5000)]);
      if (ended === undefined) throw new Failure("the stream did not end within 5 s of the caller's half-close");
      if (ended.code !== Status.OK) throw new Failure(`after the half-close the stream ended ${statusName(ended.code)}: ${ended.details}`);
      return `${values.length} inputs answered exactly; stream ended OK after the half-close`;
    },
  },
  {
    id: "empty-batch",
    title: "An empty batch is answered with no outputs or refused INVALID_ARGUMENT; the container goes on",
    once: false,
    async run(ctx) {
      let detail: string;
      try {
        const outputs = await ctx.wire.predict(create(InputsSchema, { type: ctx.type }), { timeoutMs: 5000 });
        if (outputs.length !== 0) throw new Failure(`${outputs.length} outputs for an empty batch`);
        detail = "answered with 0 outputs";
      } catch (err) {
        if (!(err instanceof CallError)) throw err;
        if (err.code !== Status.INVALID_ARGUMENT) throw new Failure(`refused ${statusName(err.code)}: ${err.details} (expected OK or INVALID_ARGUMENT)`);
        detail = `refused INVALID_ARGUMENT ("${short(err.details, 60)}")`;
      }
      await alive(ctx, "an empty batch");
      return `${detail}; serving on`;
    },
  },
  {
    id: "max-batch",
    title: "A batch of max_batch_size inputs (or --max-batch when it declares none) is answered; one more is refused with a status",
    once: false,
    async run(ctx) {
      const declared = ctx.metadata?.maxBatchSize ?? (await ctx.wire.metadata({ timeoutMs: 5000 })).maxBatchSize;
      const size = declared > 0 ? declared : ctx.settings.maxBatch;
      const values = samples(ctx, ctx.type, size, 1);
      const started = performance.now();
      expectAnswers(values, await ctx.wire.predict(pack(ctx.type, values), { timeoutMs: 30_000 }), `a batch of ${size}`);
      const ms = Math.round(performance.now() - started);
      if (declared === 0) return `declares no limit: a batch of ${size} answered exactly in ${ms} ms`;
      const over = await callError(ctx.wire.predict(pack(ctx.type, samples(ctx, ctx.type, size + 1, 2)), { timeoutMs: 30_000 }), `a batch of ${size + 1}`);
      if (over.code === Status.OK || over.code === Status.UNKNOWN || over.code === Status.INTERNAL) {
        throw new Failure(`a batch over max_batch_size ${declared} failed ${statusName(over.code)}: ${over.details}`);
      }
      await alive(ctx, "a batch over the limit");
      return `max_batch_size ${declared}: ${size} answered in ${ms} ms, ${size + 1} refused ${statusName(over.code)}`;
    },
  },
  {
    id: "wrong-input-type",
    title: "A batch of another input type is INVALID_ARGUMENT on Predict and error_code 3 on PredictStream, the stream going on",
    once: false,
    async run(ctx) {
      const other = otherType(ctx.type);
      const bad = pack(other, samples(ctx, other, 2));
      const unary = await callError(ctx.wire.predict(bad, { timeoutMs: 5000 }), `Predict of ${typeName(other)}`);
      if (unary.code !== Status.INVALID_ARGUMENT)
        throw new Failure(`Predict of ${typeName(other)} failed ${statusName(unary.code)}, expected INVALID_ARGUMENT`);
      if (!ctx.wire.streams) return `Predict INVALID_ARGUMENT ("${short(unary.details, 60)}") ${NO_STREAM_NOTE}`;
      const stream = ctx.wire.stream();
      const good = samples(ctx, ctx.type, 2);
      stream.send(1n, bad);
      stream.send(2n, pack(ctx.type, good));
      try {
        await stream.waitForAnswers(2, 10_000);
      } finally {
        stream.end();
      }
      const first = stream.answers.find((a) => a.batchId === 1n);
      const second = stream.answers.find((a) => a.batchId === 2n);
      if (first?.errorCode !== Status.INVALID_ARGUMENT)
        throw new Failure(`the stream's bad batch: error_code ${first?.errorCode}, expected 3 (INVALID_ARGUMENT)`);
      if (second === undefined || second.errorCode !== 0) throw new Failure("the stream's next batch was not answered");
      expectAnswers(good, second.outputs, "the stream's next batch");
      return `Predict INVALID_ARGUMENT ("${short(unary.details, 60)}"); stream error_code 3, next batch answered`;
    },
  },
  {
    id: "error-raise",
    title: "A batch whose predict raises answers an error for each of its inputs; the container goes on",
    once: false,
    run: (ctx) => allErrors(ctx, { kind: "fail" }, "predict raising"),
  },
  {
    id: "error-wrong-count",
    title: "A batch whose predict answers one output too few answers an error for each input; the container goes on",
    once: false,
    run: (ctx) => allErrors(ctx, { kind: "wrong-count" }, "a wrong output count"),
  },
  {
    id: "error-wrong-type",
    title: "A non-string output is an error for that input alone; the others are answered",
    once: false,
    async run(ctx) {
      const values = withDirective(ctx, { kind: "wrong-type" });
      const outputs = await ctx.wire.predict(pack(ctx.type, values), { timeoutMs: 10_000 });
      if (outputs.length !== 3) throw new Failure(`${outputs.length} outputs for 3 inputs`);
      if (!isError(outputs[1])) throw new Failure(`the non-string output is not an error: ${short(JSON.stringify(outputs[1]?.result))}`);
      for (const i of [0, 2]) {
        const why = mismatch(values[i]!, outputs[i]);
        if (why !== undefined) throw new Failure(`output ${i} (a good input): ${why}`);
      }
      await alive(ctx, "a non-string output");
      const e = outputs[1]!.result;
      return `that input an error ("${short(e.case === "error" ? e.value : "", 60)}"), the others answered`;
    },
  },
  {
    id: "stream-in-flight",
    title: "256 batches in flight on one PredictStream (the first sleeping 400 ms): each answered once, by batch_id, in any order",
    once: true,
    async run(ctx) {
      needsStreams(ctx);
      const count = 256;
      const batches = new Map<bigint, Value[]>();
      const stream = ctx.wire.stream();
      const started = performance.now();
      for (let i = 0; i < count; i++) {
        const values = i === 0 ? [directive(ctx.type, { kind: "sleep", ms: 400 }), ...samples(ctx, ctx.type, 1, 9)] : samples(ctx, ctx.type, 4, i);
        const id = BigInt(1000 + i);
        batches.set(id, values);
        stream.send(id, pack(ctx.type, values));
      }
      try {
        await stream.waitForAnswers(count, 60_000);
      } finally {
        stream.end();
      }
      const ms = Math.round(performance.now() - started);
      const seen = new Set<bigint>();
      for (const a of stream.answers) {
        const values = batches.get(a.batchId);
        if (values === undefined) throw new Failure(`an answer for batch_id ${a.batchId}, which was never sent`);
        if (seen.has(a.batchId)) throw new Failure(`batch ${a.batchId} answered twice`);
        seen.add(a.batchId);
        if (a.errorCode !== 0) throw new Failure(`batch ${a.batchId} failed ${statusName(a.errorCode)}: ${a.errorMessage}`);
        if (a.batchId === 1000n) {
          if (a.outputs.length !== 2 || a.outputs[0]?.result.case !== "value") throw new Failure("the sleeping batch was not answered");
          const why = mismatch(values[1]!, a.outputs[1]);
          if (why !== undefined) throw new Failure(`the sleeping batch's second input: ${why}`);
        } else expectAnswers(values, a.outputs, `batch ${a.batchId}`);
      }
      const slowAt = stream.answers.findIndex((a) => a.batchId === 1000n);
      const order =
        slowAt === 0 ? "in arrival order (one batch at a time)" : `out of order (the sleeping first batch answered ${slowAt + 1}th: batches run concurrently)`;
      return `${count} answered in ${ms} ms, ${order}`;
    },
  },
  {
    id: "stream-batch-errors",
    title: "On one PredictStream: a batch whose predict raises answers per-input errors (error_code 0) and the stream goes on",
    once: true,
    async run(ctx) {
      needsStreams(ctx);
      const stream = ctx.wire.stream();
      const failing = withDirective(ctx, { kind: "fail" });
      const good = samples(ctx, ctx.type, 3, 5);
      stream.send(1n, pack(ctx.type, failing));
      stream.send(2n, pack(ctx.type, good));
      try {
        await stream.waitForAnswers(2, 10_000);
      } finally {
        stream.end();
      }
      const first = stream.answers.find((a) => a.batchId === 1n);
      const second = stream.answers.find((a) => a.batchId === 2n);
      if (first === undefined || second === undefined) throw new Failure("not every batch was answered");
      if (first.errorCode !== 0) throw new Failure(`a raising model failed the whole batch (${statusName(first.errorCode)}): expected per-input errors`);
      if (first.outputs.length !== 3 || !first.outputs.every(isError)) throw new Failure("the raising batch's inputs are not all errors");
      expectAnswers(good, second.outputs, "the next batch");
      return "per-input errors, error_code 0; next batch answered";
    },
  },
  {
    id: "deadline",
    title: "A Predict whose deadline passes while the model works fails DEADLINE_EXCEEDED at the deadline; the container goes on",
    once: true,
    async run(ctx) {
      const started = performance.now();
      const err = await callError(
        ctx.wire.predict(pack(ctx.type, [directive(ctx.type, { kind: "sleep", ms: 1500 })]), { timeoutMs: 300 }),
        "a 1500 ms batch with a 300 ms deadline",
      );
      const ms = Math.round(performance.now() - started);
      if (err.code !== Status.DEADLINE_EXCEEDED) throw new Failure(`failed ${statusName(err.code)}: ${err.details}, expected DEADLINE_EXCEEDED`);
      if (ms > 1200) throw new Failure(`DEADLINE_EXCEEDED only after ${ms} ms (deadline 300 ms)`);
      const again = await alive(ctx, "a missed deadline");
      return `DEADLINE_EXCEEDED after ${ms} ms; next batch answered in ${again} ms`;
    },
  },
  {
    id: "cancel",
    title: "A cancelled Predict and a cancelled PredictStream with a batch in flight leave the container serving",
    once: true,
    async run(ctx) {
      const slow = pack(ctx.type, [directive(ctx.type, { kind: "sleep", ms: 1000 })]);
      const call = ctx.wire.predictCall(slow, { timeoutMs: 10_000 });
      await sleep(150);
      call.cancel();
      const unary = await callError(call.result, "a cancelled Predict");
      if (unary.code !== Status.CANCELLED) throw new Failure(`the cancelled Predict ended ${statusName(unary.code)}`);
      if (!ctx.wire.streams) return `Predict CANCELLED; next batch answered in ${await alive(ctx, "a cancellation")} ms ${NO_STREAM_NOTE}`;
      const stream = ctx.wire.stream();
      stream.send(1n, slow);
      await sleep(150);
      stream.cancel();
      const ended = await stream.ended;
      if (ended.code !== Status.CANCELLED) throw new Failure(`the cancelled stream ended ${statusName(ended.code)}`);
      const again = await alive(ctx, "two cancellations");
      return `both CANCELLED; next batch answered in ${again} ms`;
    },
  },
  {
    id: "large-message",
    title: "A batch message of 8-16 MiB (more than gRPC's 4 MiB default; the gateway takes 10 MiB bodies) is accepted and answered",
    once: true,
    async run(ctx) {
      let values: Value[];
      switch (ctx.type) {
        case InputType.STRINGS:
          values = Array.from({ length: 16 }, (_, i) => String.fromCharCode(97 + i).repeat(1 << 20));
          break;
        case InputType.BYTES:
          values = Array.from({ length: 16 }, (_, i) => new Uint8Array(1 << 20).fill(i + 1));
          break;
        case InputType.DOUBLES:
          values = Array.from({ length: 64 }, (_, i) => Array.from({ length: 32_768 }, (_, j) => ((i + j) % 16) / 4));
          break;
        default:
          // floats: 4 bytes each; ints: sint32 varints of 2 bytes (8 MiB, twice the default).
          values = Array.from({ length: 64 }, (_, i) => Array.from({ length: 65_536 }, (_, j) => ((i * 64 + j) % 8000) + 100));
      }
      const request = encodeRequest(ctx.type, values);
      const started = performance.now();
      expectAnswers(values, await ctx.wire.predictRaw(request, { timeoutMs: 60_000 }), `a ${mib(request.length)} batch`);
      return `${mib(request.length)} batch answered exactly in ${Math.round(performance.now() - started)} ms`;
    },
  },
  {
    id: "oversized",
    title: "A message over the container's limit (--max-message-bytes, 64 MiB) is refused RESOURCE_EXHAUSTED; the container goes on",
    once: true,
    async run(ctx) {
      const size = ctx.settings.maxMessageBytes + (1 << 20);
      // A PredictRequest whose inputs hold one bytes entry of `size` bytes, written by hand: field 1
      // (inputs, length-delimited) around field 1 (type) and field 6 (bytes).
      const payload = Buffer.alloc(size, 0x41);
      const inner = Buffer.concat([Buffer.from([0x08, ctx.type]), Buffer.from([0x32]), varint(size), payload]);
      const request = Buffer.concat([Buffer.from([0x0a]), varint(inner.length), inner]);
      const err = await callError(ctx.wire.predictRaw(request, { timeoutMs: 60_000 }), `a ${mib(request.length)} message`);
      if (err.code !== Status.RESOURCE_EXHAUSTED) throw new Failure(`a ${mib(request.length)} message failed ${statusName(err.code)}: ${err.details}`);
      await alive(ctx, "an oversized message");
      return `${mib(request.length)}: RESOURCE_EXHAUSTED ("${short(err.details, 70)}"); serving on`;
    },
  },
  {
    id: "metrics",
    title: "Optional: Prometheus text on CLIPPER_METRICS_PORT /metrics with the clipper_model_* series",
    once: true,
    async run(ctx) {
      let text: string;
      try {
        const res = await fetch(`http://127.0.0.1:${ctx.container.metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
        if (res.status !== 200) throw new Failure(`GET /metrics answered HTTP ${res.status}`);
        text = await res.text();
      } catch (err) {
        if (err instanceof Failure) throw err;
        throw new Skip(`no metrics on CLIPPER_METRICS_PORT (${ctx.container.metricsPort}): optional`);
      }
      const series = ["clipper_model_requests_total", "clipper_model_inputs_total", "clipper_model_batch_size", "clipper_model_predict_duration_seconds"];
      const missing = series.filter((s) => !text.includes(s));
      if (missing.length > 0) throw new Failure(`/metrics lacks ${missing.join(", ")}`);
      const ok = /clipper_model_requests_total\{[^}]*outcome="ok"[^}]*\}\s+([0-9.e+]+)/.exec(text)?.[1];
      return `${series.length} series; requests_total{outcome="ok"} ${ok ?? "?"}`;
    },
  },
];

/**
 * Readiness while the model loads: the primary container is started with the conformance model
 * taking `loadMs` to load. Until it has loaded, health must not be SERVING (the port may be closed,
 * or answer NOT_SERVING) and no batch may be answered; then SERVING within the start timeout.
 */
export async function waitUntilServing(ctx: CheckContext, loading: boolean): Promise<string> {
  const { container, wire, settings } = ctx;
  const deadline = container.startedAtMs + settings.startTimeoutMs;
  const seen = new Map<string, number>();
  let predictWhileLoading: string | undefined;
  while (performance.now() < deadline) {
    if (!container.running) {
      throw new Failure(`the container ${container.describeExit()} before it was SERVING; its last lines: ${container.tail(6).join(" | ")}`);
    }
    let state: string;
    try {
      const status = await wire.health("", { timeoutMs: 1000 });
      state = ServingStatus[status] ?? String(status);
    } catch (err) {
      state = err instanceof CallError ? (err.code === Status.UNAVAILABLE ? "port closed" : statusName(err.code)) : "port closed";
    }
    const now = performance.now();
    if (state === "SERVING") {
      const at = Math.round(now - container.startedAtMs);
      if (!loading) return `SERVING ${at} ms after start`;
      const loadingAt = container.lineAt(LOADING_LINE);
      const loadedAt = container.lineAt(LOADED_LINE);
      if (loadingAt === undefined) throw new Failure(`SERVING at ${at} ms, but the model never printed "${LOADING_LINE}" (is it the conformance model?)`);
      if (now < loadingAt + settings.loadMs - 50) {
        throw new Failure(`SERVING at ${at} ms, ${Math.round(loadingAt + settings.loadMs - now)} ms before the model finished loading`);
      }
      if (predictWhileLoading?.startsWith("answered")) throw new Failure(`while loading a Predict was ${predictWhileLoading}`);
      const states = [...seen.entries()].map(([s, t]) => `${s} until ${Math.round(t - container.startedAtMs)} ms`).join(", ");
      const loaded = loadedAt === undefined ? "" : ` (loaded at ${Math.round(loadedAt - container.startedAtMs)} ms)`;
      return `while loading ${settings.loadMs} ms: ${states || "nothing"}${predictWhileLoading ? `, Predict ${predictWhileLoading}` : ""}; SERVING at ${at} ms${loaded}`;
    }
    if (state !== "NOT_SERVING" && state !== "port closed" && state !== "NOT_FOUND" && state !== "SERVICE_UNKNOWN") {
      throw new Failure(`health answered ${state} while starting`);
    }
    seen.set(state, now);
    if (state === "NOT_SERVING" && loading && predictWhileLoading === undefined) {
      try {
        await wire.predict(pack(ctx.type, samples(ctx, ctx.type, 1)), { timeoutMs: 1000 });
        predictWhileLoading = "answered before the model was loaded";
      } catch (err) {
        predictWhileLoading = err instanceof CallError ? `refused ${statusName(err.code)}` : "refused";
      }
    }
    await sleep(25);
  }
  throw new Failure(`not SERVING within ${settings.startTimeoutMs} ms; last lines: ${container.tail(6).join(" | ")}`);
}

/**
 * SIGTERM with a unary Predict and a PredictStream batch in flight: both are answered, health stops
 * saying SERVING, and once the kit has its answers and closes its stream (as the router does when a
 * replica goes away) the process exits 0 (or 143, the JVM's code after SIGTERM) within the
 * container-manager's grace.
 */
export async function checkSigterm(ctx: CheckContext): Promise<string> {
  const { container, wire, type, settings } = ctx;
  const slowValues = [directive(type, { kind: "sleep", ms: 800 }), ...samples(ctx, type, 1, 11)];
  const unary = wire.predict(pack(type, slowValues), { timeoutMs: 15_000 });
  const stream = wire.streams ? wire.stream() : undefined;
  stream?.send(5n, pack(type, slowValues));
  await sleep(200);
  const signalledAt = performance.now();
  container.signal("SIGTERM");
  await sleep(100);
  let healthAfter: string;
  try {
    healthAfter = ServingStatus[await wire.health("", { timeoutMs: 1000 })] ?? "?";
  } catch (err) {
    healthAfter = err instanceof CallError ? statusName(err.code) : "unreachable";
  }
  const problems: string[] = [];
  if (healthAfter === "SERVING") problems.push("health still SERVING 100 ms after SIGTERM");
  let unaryMs = -1;
  try {
    const outputs = await unary;
    unaryMs = Math.round(performance.now() - signalledAt);
    const why = mismatch(slowValues[1]!, outputs[1]);
    if (outputs.length !== 2 || why !== undefined) problems.push(`the in-flight Predict was answered wrongly: ${why ?? `${outputs.length} outputs`}`);
  } catch (err) {
    problems.push(`the in-flight Predict failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  let streamNote = "no stream over Connect";
  if (stream !== undefined)
    try {
      await stream.waitForAnswers(1, 15_000);
      const a = stream.answers[0]!;
      if (a.errorCode !== 0) problems.push(`the in-flight stream batch failed ${statusName(a.errorCode)}: ${a.errorMessage}`);
      else if (mismatch(slowValues[1]!, a.outputs[1]) !== undefined) problems.push("the in-flight stream batch was answered wrongly");
      const endedByContainer = await Promise.race([stream.ended.then(() => true), timeout(300).then(() => false)]);
      streamNote = endedByContainer ? "the container then ended the stream" : "the stream stayed open until the kit closed it";
    } catch (err) {
      problems.push(`the in-flight stream batch was not answered: ${err instanceof Error ? err.message : String(err)}`);
      streamNote = "";
    } finally {
      stream.cancel();
    }
  const exitBy = signalledAt + settings.stopGraceMs;
  const exit = await Promise.race([container.exited, timeout(Math.max(0, exitBy - performance.now()))]);
  if (exit === undefined) problems.push(`still running ${settings.stopGraceMs} ms after SIGTERM (the container-manager sends SIGKILL then)`);
  else if (!(exit.code === 0 || exit.code === 143)) problems.push(`${container.describeExit()} after SIGTERM`);
  if (problems.length > 0) throw new Failure(problems.join("; "));
  return `in-flight Predict answered at +${unaryMs} ms and stream batch answered (${streamNote}); health ${healthAfter} after SIGTERM; exited ${exit?.code} at +${Math.round((exit?.atMs ?? 0) - signalledAt)} ms`;
}

/**
 * A PredictRequest's bytes. Numeric batches are written here (protobuf-es takes seconds to write
 * millions of packed numbers); strings and bytes by protobuf-es.
 */
function encodeRequest(type: InputType, values: readonly Value[]): Buffer {
  if (type === InputType.STRINGS || type === InputType.BYTES) {
    return Buffer.from(toBinary(PredictRequestSchema, create(PredictRequestSchema, { inputs: pack(type, values) })));
  }
  const numbers = values as number[][];
  const lengths = Buffer.concat(numbers.map((v) => varint(v.length)));
  const total = numbers.reduce((n, v) => n + v.length, 0);
  let packed: Buffer;
  let field: number;
  if (type === InputType.INTS) {
    field = 3;
    packed = Buffer.alloc(total * 5);
    let at = 0;
    for (const v of numbers) {
      for (const x of v) {
        let z = x >= 0 ? x * 2 : -x * 2 - 1;
        while (z >= 0x80) {
          packed[at++] = (z & 0x7f) | 0x80;
          z = Math.floor(z / 128);
        }
        packed[at++] = z;
      }
    }
    packed = packed.subarray(0, at);
  } else {
    const width = type === InputType.DOUBLES ? 8 : 4;
    field = type === InputType.DOUBLES ? 5 : 4;
    packed = Buffer.alloc(total * width);
    let at = 0;
    for (const v of numbers) {
      for (const x of v) {
        if (width === 8) packed.writeDoubleLE(x, at);
        else packed.writeFloatLE(x, at);
        at += width;
      }
    }
  }
  const inputs = Buffer.concat([
    Buffer.from([0x08, type, 0x12]),
    varint(lengths.length),
    lengths,
    Buffer.from([(field << 3) | 2]),
    varint(packed.length),
    packed,
  ]);
  return Buffer.concat([Buffer.from([0x0a]), varint(inputs.length), inputs]);
}

function varint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

const mib = (bytes: number) => `${(bytes / (1 << 20)).toFixed(1)} MiB`;
