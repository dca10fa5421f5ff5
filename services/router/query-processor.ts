import type { Inputs, Output } from "../../gen/clipper/common/v1/data_pb.js";
import type { Application, Model } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, type ConfigView, type InputLimits, modelKey, notFound, unavailable, validateInputs } from "../shared/index.js";
import { splitBatch } from "./batch-split.js";
import type { Clock } from "./clock.js";
import type { ModelClientFactory } from "./model-clients.js";
import type { ModelSelector } from "./model-selector.js";
import type { ReplicaPicker } from "./replica-picker.js";

/** Clipper's explanations, kept word for word: clients match on them. */
export const SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO";
export const NO_MODEL_EXPLANATION = "No connected models found for query";

/** How one query was answered; the metrics label. */
export type QueryOutcome = "predicted" | "slo_exceeded" | "no_model" | "no_version" | "no_replica" | "model_error" | "batch_failed";

export interface AnsweredQuery {
  queryId: bigint;
  /** The model's output, or the application's default output. */
  output: string;
  isDefault: boolean;
  /** Why the default was answered; empty when the model answered. */
  explanation: string;
  outcome: QueryOutcome;
}

export interface QueryOptions {
  /** Ask for this model version instead of the current one. */
  version?: string;
  uid?: string;
  /** What is left of the caller's deadline, if it set one. */
  timeoutMs?: number;
  /** Aborted when the caller goes away: outstanding model calls are cancelled. */
  signal?: AbortSignal;
}

export interface QueryProcessorDeps {
  /** Undefined until the first snapshot from the registry has arrived. */
  config: () => ConfigView | undefined;
  models: ModelClientFactory;
  selector: ModelSelector;
  replicas: ReplicaPicker;
  clock: Clock;
  limits: InputLimits;
  /** The wait when neither the application's SLO nor the caller bounds it. */
  maxWaitMs: number;
}

/**
 * Answers a batch of queries for one application: resolve the model version,
 * cut the batch to the model's limit, send each part to a ready replica, and
 * answer the application's default for anything not answered in time.
 * Batching queues and the prediction cache go between resolving and calling.
 */
export class QueryProcessor {
  private nextQueryId = 1n;
  private nextBatchId = 1n;

  constructor(private readonly deps: QueryProcessorDeps) {}

  async query(application: string, inputs: Inputs | undefined, options: QueryOptions = {}): Promise<AnsweredQuery[]> {
    const view = this.deps.config();
    if (view === undefined) throw unavailable("the router has not received the configuration from the registry yet");
    const app = view.applications.get(application);
    if (app === undefined) throw notFound(`application "${application}" not found`);
    const count = validateInputs(inputs, app.inputType, this.deps.limits);
    const checked = inputs as Inputs;
    const firstId = this.nextQueryId;
    this.nextQueryId += BigInt(count);
    const answers = new Answers(app, firstId, count);

    const modelName = this.deps.selector.select(app, view, options.uid ?? "");
    if (modelName === undefined) return answers.fillDefaults(NO_MODEL_EXPLANATION, "no_model");
    const model = this.resolveVersion(view, modelName, options.version);
    if (typeof model === "string") return answers.fillDefaults(model, "no_version");

    await this.predict(view, model, checked, count, answers, this.waitMs(app, options.timeoutMs), options.signal);
    return answers.fillDefaults(SLO_EXPLANATION, "slo_exceeded");
  }

  /** The model version to call, or the explanation of why there is none. */
  private resolveVersion(view: ConfigView, modelName: string, requested: string | undefined): Model | string {
    if (requested !== undefined && requested !== "") {
      const pinned = view.models.get(modelKey(modelName, requested));
      if (pinned === undefined) throw notFound(`model ${modelName} has no version "${requested}"`);
      return pinned;
    }
    const current = view.currentVersions.get(modelName);
    if (current === undefined) return `Model ${modelName} has no current version`;
    return view.models.get(modelKey(modelName, current)) ?? `Model ${modelName}:${current} is not registered`;
  }

  private waitMs(app: Application, callerTimeoutMs: number | undefined): number {
    let wait = this.deps.maxWaitMs;
    if (app.sloMicros > 0n) wait = Math.min(wait, Number(app.sloMicros) / 1000);
    if (callerTimeoutMs !== undefined) wait = Math.min(wait, callerTimeoutMs);
    return Math.max(0, wait);
  }

  /** Fills `answers` with what the replicas say within `waitMs`; returns at the deadline at the latest. */
  private async predict(
    view: ConfigView,
    model: Model,
    inputs: Inputs,
    count: number,
    answers: Answers,
    waitMs: number,
    callerSignal: AbortSignal | undefined,
  ): Promise<void> {
    const key = modelKey(model.name, model.version);
    const cancel = new AbortController();
    const onCallerAbort = () => cancel.abort();
    if (callerSignal?.aborted) cancel.abort();
    callerSignal?.addEventListener("abort", onCallerAbort, { once: true });
    let cancelTimer: () => void = () => {};
    const expired = new Promise<void>((resolve) => {
      cancelTimer = this.deps.clock.setTimer(waitMs, resolve);
    });
    const calls = splitBatch(inputs, count, model.maxBatchSize).map(async (slice) => {
      const replica = this.deps.replicas.pick(key, view.replicaSets.get(key));
      if (replica === undefined) {
        answers.fillRange(slice.start, slice.end, `No ready replica of model ${key}`, "no_replica");
        return;
      }
      const client = this.deps.models.clientFor(replica.endpoint);
      try {
        const outputs = await client.predict(slice.inputs, this.nextBatchId++, { signal: cancel.signal, timeoutMs: waitMs });
        answers.fillOutputs(slice.start, slice.end, outputs, key);
      } catch (err) {
        // Our own deadline or cancellation: the SLO default answers it.
        if (cancel.signal.aborted || (err instanceof ConnectError && err.code === Code.DeadlineExceeded)) return;
        const message = err instanceof ConnectError ? err.rawMessage : String(err);
        answers.fillRange(slice.start, slice.end, `Model ${key} replica ${replica.endpoint} failed: ${message}`, "batch_failed");
      }
    });
    try {
      await Promise.race([Promise.all(calls), expired, aborted(cancel.signal)]);
    } finally {
      answers.close();
      cancelTimer();
      cancel.abort();
      callerSignal?.removeEventListener("abort", onCallerAbort);
    }
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** The answers of one request; closed at the deadline, after which late replies are dropped. */
class Answers {
  private readonly results: Array<AnsweredQuery | undefined>;
  private closed = false;

  constructor(
    private readonly app: Application,
    private readonly firstId: bigint,
    count: number,
  ) {
    this.results = new Array<AnsweredQuery | undefined>(count).fill(undefined);
  }

  close(): void {
    this.closed = true;
  }

  fillOutputs(start: number, end: number, outputs: Output[], key: string): void {
    for (let i = start; i < end; i++) {
      const out = outputs[i - start];
      if (out === undefined) {
        this.set(i, this.defaultAnswer(i, `Model ${key} returned ${outputs.length} outputs for ${end - start} inputs`, "model_error"));
      } else if (out.result.case === "value") {
        this.set(i, { queryId: this.firstId + BigInt(i), output: out.result.value, isDefault: false, explanation: "", outcome: "predicted" });
      } else {
        const error = out.result.case === "error" ? out.result.value : "empty output";
        this.set(i, this.defaultAnswer(i, `Model ${key} failed on this input: ${error}`, "model_error"));
      }
    }
  }

  fillRange(start: number, end: number, explanation: string, outcome: QueryOutcome): void {
    for (let i = start; i < end; i++) this.set(i, this.defaultAnswer(i, explanation, outcome));
  }

  /** Every query still unanswered gets the default; returns all answers. */
  fillDefaults(explanation: string, outcome: QueryOutcome): AnsweredQuery[] {
    return this.results.map((r, i) => r ?? this.defaultAnswer(i, explanation, outcome));
  }

  private set(i: number, answer: AnsweredQuery): void {
    if (!this.closed) this.results[i] = answer;
  }

  private defaultAnswer(i: number, explanation: string, outcome: QueryOutcome): AnsweredQuery {
    return { queryId: this.firstId + BigInt(i), output: this.app.defaultOutput, isDefault: true, explanation, outcome };
  }
}
