import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { type Inputs, InputsSchema, InputType, type Output, OutputSchema } from "../../gen/clipper/common/v1/data_pb.js";
import { type ConfigSnapshot, ConfigSnapshotSchema, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, type ConfigView, ConnectError, unavailable, viewFromSnapshot } from "../shared/index.js";
import type { ModelClient, ModelClientFactory } from "./model-clients.js";
import { PolicySelector } from "./model-selector.js";
import { PredictionCache } from "./prediction-cache.js";
import type { Answers } from "./query-observer.js";
import { NO_MODEL_EXPLANATION, QueryProcessor, type QueryProcessorDeps, SLO_EXPLANATION } from "./query-processor.js";
import { FakeClock } from "./testing/fake-clock.js";

interface Call {
  endpoint: string;
  inputs: Inputs;
  timeoutMs: number;
  signal: AbortSignal;
}

type Behaviour = (inputs: Inputs, call: Call) => Promise<Output[]> | Output[];

/** Model replicas in memory: each endpoint answers with its behaviour; every call is recorded. */
class FakeModels implements ModelClientFactory {
  readonly calls: Call[] = [];
  constructor(private readonly behaviours: Record<string, Behaviour>) {}

  clientFor(endpoint: string): ModelClient {
    return {
      predict: async (inputs, _batchId, { signal, timeoutMs }) => {
        const call = { endpoint, inputs, timeoutMs, signal };
        this.calls.push(call);
        const behaviour = this.behaviours[endpoint];
        if (behaviour === undefined) throw unavailable(`no fake replica at ${endpoint}`);
        return behaviour(inputs, call);
      },
    };
  }
}

const value = (v: string) => create(OutputSchema, { result: { case: "value", value: v } });
const error = (e: string) => create(OutputSchema, { result: { case: "error", value: e } });
/** Sums each input, as a JSON number string. */
const sum: Behaviour = (inputs) => {
  let offset = 0;
  return inputs.lengths.map((n) => {
    const s = inputs.doubles.slice(offset, offset + n).reduce((a, b) => a + b, 0);
    offset += n;
    return value(String(s));
  });
};
/** Never answers; rejects when the call is cancelled, as grpc-js does. */
const hang: Behaviour = (_inputs, call) =>
  new Promise((_resolve, reject) => call.signal.addEventListener("abort", () => reject(new ConnectError("cancelled", Code.Canceled))));

function doubles(...rows: number[][]): Inputs {
  return create(InputsSchema, { type: InputType.DOUBLES, lengths: rows.map((r) => r.length), doubles: rows.flat() });
}

type SnapshotInit = Exclude<MessageInitShape<typeof ConfigSnapshotSchema>, ConfigSnapshot>;

function config(overrides: Partial<SnapshotInit> = {}): ConfigView {
  const base: SnapshotInit = {
    revision: 1n,
    applications: [{ name: "app", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 100_000n, linkedModels: ["m"] }],
    models: [
      { name: "m", version: "1", inputType: InputType.DOUBLES },
      { name: "m", version: "2", inputType: InputType.DOUBLES, maxBatchSize: 2 },
    ],
    currentVersions: [{ modelName: "m", version: "1" }],
    replicaSets: [
      { modelName: "m", modelVersion: "1", replicas: [{ id: "r1", endpoint: "a:1", state: ReplicaState.READY }] },
      { modelName: "m", modelVersion: "2", replicas: [{ id: "r2", endpoint: "b:1", state: ReplicaState.READY }] },
    ],
  };
  return viewFromSnapshot(create(ConfigSnapshotSchema, { ...base, ...overrides }));
}

/** A QueryProcessor whose answers read as one row per query: its QueryResult and how it was reached. */
function processor(view: ConfigView | undefined | (() => ConfigView), models: FakeModels, clock = new FakeClock(), extra: Partial<QueryProcessorDeps> = {}) {
  const p = new QueryProcessor({
    config: typeof view === "function" ? view : () => view,
    models,
    selector: new PolicySelector(),
    clock,
    limits: { maxBatch: 100, maxInputSize: 100 },
    maxWaitMs: 60_000,
    ...extra,
  });
  return {
    query: async (...args: Parameters<QueryProcessor["query"]>) => answerRows(await p.query(...args)),
    onConfig: (next: ConfigView) => p.onConfig(next),
    overloadReason: (application: string) => p.overloadReason(application),
  };
}

function answerRows({ results, outcomes }: Answers) {
  return results.map((r, i) => ({ ...r, outcome: outcomes[i] }));
}

describe("QueryProcessor", () => {
  it("answers with the current version's outputs and increasing query ids", async () => {
    const models = new FakeModels({ "a:1": sum });
    const p = processor(config(), models);
    const first = await p.query("app", doubles([1, 2], [3]));
    const second = await p.query("app", doubles([5]));
    expect(first.map((a) => [a.queryId, a.output, a.default, a.outcome])).toEqual([
      [1n, "3", false, "predicted"],
      [2n, "3", false, "predicted"],
    ]);
    expect(second[0]?.queryId).toBe(3n);
    expect(models.calls.map((c) => c.endpoint)).toEqual(["a:1", "a:1"]);
  });

  it("rejects an unknown application with NOT_FOUND and bad inputs with INVALID_ARGUMENT", async () => {
    const p = processor(config(), new FakeModels({ "a:1": sum }));
    await expect(p.query("nope", doubles([1]))).rejects.toMatchObject({ code: Code.NotFound, rawMessage: 'application "nope" not found' });
    const ints = create(InputsSchema, { type: InputType.INTS, lengths: [1], ints: [1] });
    await expect(p.query("app", ints)).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(p.query("app", undefined)).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: "inputs is missing" });
  });

  it("answers UNAVAILABLE before the first configuration arrives", async () => {
    await expect(processor(undefined, new FakeModels({})).query("app", doubles([1]))).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it("answers the default when no model is linked", async () => {
    const view = config({ applications: [{ name: "app", inputType: InputType.DOUBLES, defaultOutput: "d", sloMicros: 1000n }] });
    const [answer] = await processor(view, new FakeModels({})).query("app", doubles([1]));
    expect(answer).toMatchObject({ output: "d", default: true, defaultExplanation: NO_MODEL_EXPLANATION, outcome: "no_model" });
  });

  it("answers the default when no replica of the version is ready", async () => {
    const view = config({
      replicaSets: [{ modelName: "m", modelVersion: "1", replicas: [{ id: "r1", endpoint: "a:1", state: ReplicaState.STARTING }] }],
    });
    const models = new FakeModels({ "a:1": sum });
    const answers = await processor(view, models).query("app", doubles([1], [2]));
    expect(answers.map((a) => a.defaultExplanation)).toEqual(["No ready replica of model m:1", "No ready replica of model m:1"]);
    expect(models.calls).toHaveLength(0);
  });

  it("answers the default at the SLO and cancels the model call", async () => {
    const clock = new FakeClock();
    const models = new FakeModels({ "a:1": hang });
    const pending = processor(config(), models, clock).query("app", doubles([1]));
    expect(clock.requested).toEqual([100]);
    expect(models.calls[0]?.timeoutMs).toBe(100);
    clock.advance(99);
    clock.advance(1);
    const [answer] = await pending;
    expect(answer).toMatchObject({ output: "-1", default: true, defaultExplanation: SLO_EXPLANATION, outcome: "slo_exceeded" });
    expect(models.calls[0]?.signal.aborted).toBe(true);
    expect(clock.pending()).toBe(0);
  });

  it("uses the caller's deadline when it is shorter than the SLO", async () => {
    const clock = new FakeClock();
    const models = new FakeModels({ "a:1": hang });
    const pending = processor(config(), models, clock).query("app", doubles([1]), { timeoutMs: 30 });
    expect(clock.requested).toEqual([30]);
    clock.advance(30);
    expect((await pending)[0]?.defaultExplanation).toBe(SLO_EXPLANATION);
  });

  it("keeps the answers that came in time and defaults the rest", async () => {
    const clock = new FakeClock();
    const view = config({ currentVersions: [{ modelName: "m", version: "2" }] });
    let calls = 0;
    const models = new FakeModels({ "b:1": (inputs, call) => (calls++ === 0 ? sum(inputs, call) : hang(inputs, call)) });
    const pending = processor(view, models, clock).query("app", doubles([1], [2], [3]));
    await Promise.resolve();
    clock.advance(100);
    const answers = await pending;
    expect(answers.map((a) => [a.output, a.default])).toEqual([
      ["1", false],
      ["2", false],
      ["-1", true],
    ]);
  });

  it("answers the default for a per-input model error, naming the model and the error", async () => {
    const models = new FakeModels({ "a:1": () => [value("ok"), error("division by zero")] });
    const answers = await processor(config(), models).query("app", doubles([1], [2]));
    expect(answers[0]).toMatchObject({ output: "ok", default: false });
    expect(answers[1]).toMatchObject({
      output: "-1",
      default: true,
      defaultExplanation: "Model m:1 failed on this input: division by zero",
      outcome: "model_error",
    });
  });

  it("answers the default for the whole batch when the model returns the wrong number of outputs", async () => {
    const models = new FakeModels({ "a:1": () => [value("ok")] });
    const answers = await processor(config(), models).query("app", doubles([1], [2]));
    // Which input "ok" belongs to is unknown, so no query gets it.
    for (const a of answers) expect(a).toMatchObject({ default: true, defaultExplanation: "Model m:1 returned 1 outputs for 2 inputs" });
  });

  it("answers the default when the whole batch fails", async () => {
    const models = new FakeModels({ "a:1": () => Promise.reject(unavailable("connection refused")) });
    const answers = await processor(config(), models).query("app", doubles([1], [2]));
    expect(answers.map((a) => a.defaultExplanation)).toEqual([
      "Model m:1 replica a:1 failed: connection refused",
      "Model m:1 replica a:1 failed: connection refused",
    ]);
    expect(answers[0]?.outcome).toBe("batch_failed");
  });

  it("calls the requested version, and rejects a version that does not exist", async () => {
    const models = new FakeModels({ "a:1": sum, "b:1": () => [value("v2")] });
    const p = processor(config(), models);
    expect((await p.query("app", doubles([1]), { version: "2" }))[0]?.output).toBe("v2");
    expect(models.calls.map((c) => c.endpoint)).toEqual(["b:1"]);
    await expect(p.query("app", doubles([1]), { version: "3" })).rejects.toMatchObject({
      code: Code.NotFound,
      rawMessage: 'model m has no version "3"',
    });
  });

  it("splits a batch by the model's max_batch_size and keeps the order", async () => {
    const view = config({ currentVersions: [{ modelName: "m", version: "2" }] });
    const models = new FakeModels({ "b:1": sum });
    const answers = await processor(view, models).query("app", doubles([1], [2, 2], [3], [4, 4, 4], [5]));
    expect(answers.map((a) => a.output)).toEqual(["1", "4", "3", "12", "5"]);
    expect(models.calls.map((c) => c.inputs.lengths)).toEqual([[1, 2], [1, 3], [1]]);
    expect(models.calls.map((c) => c.inputs.doubles)).toEqual([[1, 2, 2], [3, 4, 4, 4], [5]]);
  });

  it("spreads batches round-robin over the ready replicas only", async () => {
    const view = config({
      replicaSets: [
        {
          modelName: "m",
          modelVersion: "1",
          replicas: [
            { id: "r1", endpoint: "a:1", state: ReplicaState.READY },
            { id: "r2", endpoint: "a:2", state: ReplicaState.UNHEALTHY },
            { id: "r3", endpoint: "a:3", state: ReplicaState.READY },
          ],
        },
      ],
    });
    const models = new FakeModels({ "a:1": sum, "a:3": sum });
    const p = processor(view, models);
    for (let i = 0; i < 4; i++) await p.query("app", doubles([i]));
    expect(models.calls.map((c) => c.endpoint)).toEqual(["a:1", "a:3", "a:1", "a:3"]);
  });

  it("cancels the model call when the caller goes away", async () => {
    const models = new FakeModels({ "a:1": hang });
    const caller = new AbortController();
    const pending = processor(config(), models).query("app", doubles([1]), { signal: caller.signal });
    caller.abort();
    expect((await pending)[0]?.default).toBe(true);
    expect(models.calls[0]?.signal.aborted).toBe(true);
  });
});

/** Calls that wait until the test answers them. */
class Held {
  readonly calls: Array<{ inputs: Inputs; call: Call; resolve: (o: Output[]) => void; reject: (e: unknown) => void }> = [];
  readonly behaviour: Behaviour = (inputs, call) =>
    new Promise((resolve, reject) => {
      this.calls.push({ inputs, call, resolve, reject });
      call.signal.addEventListener("abort", () => reject(new ConnectError("cancelled", Code.Canceled)), { once: true });
    });

  /** Answers call `i` with the sum of each input. */
  answer(i: number): void {
    const c = this.calls[i];
    c?.resolve(sum(c.inputs, c.call) as Output[]);
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("QueryProcessor batching, cache and overload", () => {
  const app = (over: Record<string, unknown> = {}) => ({
    name: "app",
    inputType: InputType.DOUBLES,
    defaultOutput: "-1",
    sloMicros: 100_000n,
    linkedModels: ["m"],
    ...over,
  });

  it("batches the queries that queue while the replica is busy into one model call", async () => {
    const held = new Held();
    const view = config({ models: [{ name: "m", version: "1", inputType: InputType.DOUBLES, batching: { maxInFlightPerReplica: 1 } }] });
    const p = processor(view, new FakeModels({ "a:1": held.behaviour }));
    const first = p.query("app", doubles([1]));
    const rest = [2, 3, 4].map((v) => p.query("app", doubles([v])));
    expect(held.calls).toHaveLength(1);
    held.answer(0);
    await flush();
    expect(held.calls.map((c) => c.inputs.doubles)).toEqual([[1], [2, 3, 4]]);
    held.answer(1);
    expect((await first)[0]?.output).toBe("1");
    expect((await Promise.all(rest)).map((r) => r[0]?.output)).toEqual(["2", "3", "4"]);
  });

  it("refuses at once with RESOURCE_EXHAUSTED when the queue is full, or answers the default when the app asks for it", async () => {
    const held = new Held();
    const models = [{ name: "m", version: "1", inputType: InputType.DOUBLES, batching: { maxInFlightPerReplica: 1, maxQueueLength: 2 } }];
    const p = processor(config({ models }), new FakeModels({ "a:1": held.behaviour }));
    const inFlight = p.query("app", doubles([1]));
    const queued = p.query("app", doubles([2], [3]));
    await expect(p.query("app", doubles([4]))).rejects.toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "model m:1 has 2 queries waiting (limit 2): the router is overloaded, retry later",
    });
    const lenient = processor(config({ models, applications: [app({ defaultOnOverload: true })] }), new FakeModels({ "a:1": new Held().behaviour }));
    void lenient.query("app", doubles([1]));
    void lenient.query("app", doubles([2], [3]));
    const [overloaded] = await lenient.query("app", doubles([4]));
    expect(overloaded).toMatchObject({ output: "-1", default: true, outcome: "overloaded" });
    expect(overloaded?.defaultExplanation).toContain("Overloaded: model m:1 has 2 queries waiting");
    held.answer(0);
    await flush();
    held.answer(1);
    expect((await inFlight)[0]?.output).toBe("1");
    expect((await queued).map((a) => a.output)).toEqual(["2", "3"]);
  });

  it("frees a cancelled caller's place in the queue", async () => {
    const held = new Held();
    const models = [{ name: "m", version: "1", inputType: InputType.DOUBLES, batching: { maxInFlightPerReplica: 1, maxQueueLength: 1 } }];
    const p = processor(config({ models }), new FakeModels({ "a:1": held.behaviour }));
    void p.query("app", doubles([1]));
    const caller = new AbortController();
    const gone = p.query("app", doubles([2]), { signal: caller.signal });
    await expect(p.query("app", doubles([3]))).rejects.toMatchObject({ code: Code.ResourceExhausted });
    caller.abort();
    expect((await gone)[0]).toMatchObject({ default: true, outcome: "cancelled" });
    const next = p.query("app", doubles([3]));
    held.answer(0);
    await flush();
    expect(held.calls.map((c) => c.inputs.doubles)).toEqual([[1], [3]]);
    held.answer(1);
    expect((await next)[0]?.output).toBe("3");
  });

  it("retries a failed replica's batch on another replica within the deadline", async () => {
    const view = config({
      replicaSets: [
        {
          modelName: "m",
          modelVersion: "1",
          replicas: [
            { id: "r1", endpoint: "a:1", state: ReplicaState.READY },
            { id: "r2", endpoint: "a:2", state: ReplicaState.READY },
          ],
        },
      ],
    });
    const models = new FakeModels({ "a:1": () => Promise.reject(unavailable("connection refused")), "a:2": sum });
    const answers = await processor(view, models).query("app", doubles([1], [2]));
    expect(answers.map((a) => [a.output, a.default])).toEqual([
      ["1", false],
      ["2", false],
    ]);
    expect(models.calls.map((c) => c.endpoint)).toEqual(["a:1", "a:2"]);
  });

  it("caches per application setting, de-duplicates identical queries in flight and compares full inputs", async () => {
    const held = new Held();
    const cache = new PredictionCache({ hash: () => 7 });
    const view = config({ applications: [app({ cacheEnabled: true }), app({ name: "nocache" })] });
    const p = processor(view, new FakeModels({ "a:1": held.behaviour }), new FakeClock(), { cache });
    const a = p.query("app", doubles([5], [5]));
    const b = p.query("app", doubles([5]));
    expect(held.calls.map((c) => c.inputs.doubles)).toEqual([[5]]);
    held.answer(0);
    expect((await a).map((r) => [r.output, r.outcome])).toEqual([
      ["5", "predicted"],
      ["5", "cached"],
    ]);
    expect((await b)[0]).toMatchObject({ output: "5", outcome: "cached" });
    expect((await p.query("app", doubles([5])))[0]?.outcome).toBe("cached");
    const other = p.query("app", doubles([6]));
    await flush();
    held.answer(1);
    expect((await other)[0]).toMatchObject({ output: "6", outcome: "predicted" });
    const uncached = p.query("nocache", doubles([5]));
    await flush();
    held.answer(2);
    expect((await uncached)[0]?.outcome).toBe("predicted");
    expect(held.calls).toHaveLength(3);
  });

  it("drops a version's cached outputs when the model's current version changes", async () => {
    const cache = new PredictionCache();
    let view = config({ applications: [app({ cacheEnabled: true })] });
    const models = new FakeModels({ "a:1": sum, "b:1": sum });
    const p = processor(() => view, models, new FakeClock(), { cache });
    p.onConfig(view);
    await p.query("app", doubles([1]));
    expect((await p.query("app", doubles([1])))[0]?.outcome).toBe("cached");
    view = config({ applications: [app({ cacheEnabled: true })], currentVersions: [{ modelName: "m", version: "2" }] });
    p.onConfig(view);
    view = config({ applications: [app({ cacheEnabled: true })] });
    p.onConfig(view);
    expect((await p.query("app", doubles([1])))[0]?.outcome).toBe("predicted");
    expect(cache.stats().entries).toBe(1);
  });

  it("sends fixed-size batches, repeating the last input and dropping the extra outputs", async () => {
    const clock = new FakeClock();
    const models = [{ name: "m", version: "1", inputType: InputType.DOUBLES, maxBatchSize: 4, batching: { fixedSize: true, maxWaitMicros: 2000 } }];
    const fake = new FakeModels({ "a:1": sum });
    const pending = processor(config({ models }), fake, clock).query("app", doubles([1], [2]));
    clock.advance(2);
    const answers = await pending;
    expect(fake.calls[0]?.inputs.doubles).toEqual([1, 2, 2, 2]);
    expect(answers.map((a) => a.output)).toEqual(["1", "2"]);
  });
});

describe("QueryProcessor under overload", () => {
  /** A replica answering each batch after 2 ms + 0.5 ms per query on the fake clock, one batch at a time. */
  function timedReplica(clock: FakeClock): Behaviour {
    return (inputs) => new Promise((resolve) => clock.setTimer(2 + 0.5 * inputs.lengths.length, () => resolve(sum(inputs, undefined as never) as Output[])));
  }

  async function overloaded(defaultOnOverload: boolean) {
    const clock = new FakeClock();
    const view = config({
      applications: [{ name: "app", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 20_000n, linkedModels: ["m"], defaultOnOverload }],
      models: [{ name: "m", version: "1", inputType: InputType.DOUBLES, batching: { maxInFlightPerReplica: 1 } }],
    });
    const p = processor(view, new FakeModels({ "a:1": timedReplica(clock) }), clock);
    // Teach the router the replica's latency: batches of several sizes, one at a time.
    for (const size of [1, 2, 4, 8, 1, 2, 4, 8, 3, 5]) {
      let done = false;
      const pending = p.query("app", doubles(...Array.from({ length: size }, (_, i) => [i]))).finally(() => {
        done = true;
      });
      for (let t = 0; t < 100 && !done; t++) {
        await flush();
        clock.advance(0.5);
      }
      await pending;
    }
    // A burst far past what the replica answers in a 20 ms SLO. Its throughput was measured at the small batches of the training
    // (about 1 query/ms), so admission takes about 20 now; a sustained overload raises the measure as batches grow.
    const outcomes = Array.from({ length: 400 }, (_, i) =>
      p.query("app", doubles([i])).then(
        (rows) => ({ rows, error: undefined }),
        (error: ConnectError) => ({ rows: undefined, error }),
      ),
    );
    for (let t = 0; t < 60; t++) {
      await flush();
      clock.advance(1);
    }
    return { answers: await Promise.all(outcomes), overloadReason: (name: string) => p.overloadReason(name), clock, burst: () => p.query("app", doubles([1])) };
  }

  it("refuses at once what the queue ahead would make late, and answers everything it admitted in time", async () => {
    const { answers: outcomes } = await overloaded(false);
    const refused = outcomes.filter((o) => o.error !== undefined);
    const answered = outcomes.flatMap((o) => o.rows ?? []);
    expect(refused.length).toBeGreaterThan(200);
    for (const { error } of refused) {
      expect(error?.code).toBe(Code.ResourceExhausted);
      expect(error?.rawMessage).toMatch(/^model m:1 would answer in about \d+ ms \(\d+ queries ahead\), after the deadline \d+ ms away/);
    }
    // Goodput is not sacrificed: the admitted queries are the model's answers, not defaults.
    expect(answered.length).toBeGreaterThanOrEqual(15);
    expect(answered.filter((a) => a.default)).toEqual([]);
  });

  it("answers the default at once instead, with the reason, for an application that asks for it", async () => {
    const { answers: outcomes } = await overloaded(true);
    expect(outcomes.every((o) => o.error === undefined)).toBe(true);
    const rows = outcomes.flatMap((o) => o.rows ?? []);
    const shed = rows.filter((a) => a.outcome === "overloaded");
    expect(shed.length).toBeGreaterThan(200);
    expect(shed[0]?.defaultExplanation).toMatch(/^Overloaded: model m:1 would answer in about/);
    expect(rows.filter((a) => a.outcome === "predicted").length).toBeGreaterThanOrEqual(15);
    expect(rows.filter((a) => a.outcome === "slo_exceeded")).toEqual([]);
  });

  it("tells a gateway in its process, before it reads a request, whether the router would refuse it", async () => {
    const quiet = await overloaded(false);
    // The burst has drained: nothing ahead, nothing to refuse.
    expect(quiet.overloadReason("app")).toBeUndefined();
    const pending = Array.from({ length: 200 }, () => quiet.burst().catch(() => undefined));
    expect(quiet.overloadReason("app")).toMatch(/^model m:1 would answer in about \d+ ms \(\d+ queries ahead\), after the SLO/);
    expect(quiet.overloadReason("unknown-app")).toBeUndefined();
    for (let t = 0; t < 60; t++) {
      await flush();
      quiet.clock.advance(1);
    }
    await Promise.all(pending);
    const lenient = await overloaded(true);
    void Array.from({ length: 200 }, () => lenient.burst());
    expect(lenient.overloadReason("app")).toBeUndefined();
  });
});
