import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType, type Inputs, InputsSchema, type Output, OutputSchema } from "../../gen/clipper/common/v1/data_pb.js";
import { type ConfigSnapshot, ConfigSnapshotSchema, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, type ConfigView, unavailable, viewFromSnapshot } from "../shared/index.js";
import type { Clock } from "./clock.js";
import type { ModelClient, ModelClientFactory } from "./model-clients.js";
import { FirstLinkedModelSelector } from "./model-selector.js";
import { NO_MODEL_EXPLANATION, QueryProcessor, SLO_EXPLANATION } from "./query-processor.js";
import { RoundRobinReplicaPicker } from "./replica-picker.js";

class FakeClock implements Clock {
  private time = 0;
  private readonly timers = new Set<{ at: number; fn: () => void }>();
  readonly requested: number[] = [];

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): () => void {
    this.requested.push(ms);
    const timer = { at: this.time + ms, fn };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }

  advance(ms: number): void {
    this.time += ms;
    for (const t of [...this.timers]) {
      if (t.at <= this.time) {
        this.timers.delete(t);
        t.fn();
      }
    }
  }

  pending(): number {
    return this.timers.size;
  }
}

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

function processor(view: ConfigView | undefined, models: FakeModels, clock = new FakeClock()) {
  return new QueryProcessor({
    config: () => view,
    models,
    selector: new FirstLinkedModelSelector(),
    replicas: new RoundRobinReplicaPicker(),
    clock,
    limits: { maxBatch: 100, maxInputSize: 100 },
    maxWaitMs: 60_000,
  });
}

describe("QueryProcessor", () => {
  it("answers with the current version's outputs and increasing query ids", async () => {
    const models = new FakeModels({ "a:1": sum });
    const p = processor(config(), models);
    const first = await p.query("app", doubles([1, 2], [3]));
    const second = await p.query("app", doubles([5]));
    expect(first.map((a) => [a.queryId, a.output, a.isDefault, a.outcome])).toEqual([
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
    expect(answer).toMatchObject({ output: "d", isDefault: true, explanation: NO_MODEL_EXPLANATION, outcome: "no_model" });
  });

  it("answers the default when no replica of the version is ready", async () => {
    const view = config({
      replicaSets: [{ modelName: "m", modelVersion: "1", replicas: [{ id: "r1", endpoint: "a:1", state: ReplicaState.STARTING }] }],
    });
    const models = new FakeModels({ "a:1": sum });
    const answers = await processor(view, models).query("app", doubles([1], [2]));
    expect(answers.map((a) => a.explanation)).toEqual(["No ready replica of model m:1", "No ready replica of model m:1"]);
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
    expect(answer).toMatchObject({ output: "-1", isDefault: true, explanation: SLO_EXPLANATION, outcome: "slo_exceeded" });
    expect(models.calls[0]?.signal.aborted).toBe(true);
    expect(clock.pending()).toBe(0);
  });

  it("uses the caller's deadline when it is shorter than the SLO", async () => {
    const clock = new FakeClock();
    const models = new FakeModels({ "a:1": hang });
    const pending = processor(config(), models, clock).query("app", doubles([1]), { timeoutMs: 30 });
    expect(clock.requested).toEqual([30]);
    clock.advance(30);
    expect((await pending)[0]?.explanation).toBe(SLO_EXPLANATION);
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
    expect(answers.map((a) => [a.output, a.isDefault])).toEqual([
      ["1", false],
      ["2", false],
      ["-1", true],
    ]);
  });

  it("answers the default for a per-input model error, naming the model and the error", async () => {
    const models = new FakeModels({ "a:1": () => [value("ok"), error("division by zero")] });
    const answers = await processor(config(), models).query("app", doubles([1], [2]));
    expect(answers[0]).toMatchObject({ output: "ok", isDefault: false });
    expect(answers[1]).toMatchObject({ output: "-1", isDefault: true, explanation: "Model m:1 failed on this input: division by zero", outcome: "model_error" });
  });

  it("answers the default when the model returns too few outputs", async () => {
    const models = new FakeModels({ "a:1": () => [value("ok")] });
    const answers = await processor(config(), models).query("app", doubles([1], [2]));
    expect(answers[1]?.explanation).toBe("Model m:1 returned 1 outputs for 2 inputs");
  });

  it("answers the default when the whole batch fails", async () => {
    const models = new FakeModels({ "a:1": () => Promise.reject(unavailable("connection refused")) });
    const answers = await processor(config(), models).query("app", doubles([1], [2]));
    expect(answers.map((a) => a.explanation)).toEqual([
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
    expect((await pending)[0]?.isDefault).toBe(true);
    expect(models.calls[0]?.signal.aborted).toBe(true);
  });
});
