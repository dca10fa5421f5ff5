import type { Inputs, Output } from "../../gen/clipper/common/v1/data_pb.js";
import type { QueryResult } from "../../gen/clipper/v1/query_service_pb.js";
import type { Application, Model, ReplicaSet } from "../../gen/clipper/v1/resources_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import {
  type CancelSignal,
  Code,
  type ConfigView,
  ConnectError,
  type InputLimits,
  modelKey,
  notFound,
  resourceExhausted,
  unavailable,
  validateInputs,
} from "../shared/index.js";
import { parseArm } from "./application-policy.js";
import { type BatcherSettings, type BatchItem, type Dispatch, VersionBatcher, type VersionBatcherOptions } from "./batching/version-batcher.js";
import type { Clock } from "./clock.js";
import type { ModelClientFactory } from "./model-clients.js";
import type { ModelSelector, SelectionPlan } from "./model-selector.js";
import { type InputRef, inputKeyBytes, packInputs } from "./pack-inputs.js";
import type { CacheTicket, PredictionCache } from "./prediction-cache.js";
import type { Answers, QueryObserver, QueryOutcome, RequestObservation } from "./query-observer.js";

/** Clipper's explanations, kept word for word: clients match on them. */
export const SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO";
export const NO_MODEL_EXPLANATION = "No connected models found for query";
export const CANCELLED_EXPLANATION = "The caller cancelled the query";

export interface QueryOptions {
  /** Ask for this model version instead of the current one. */
  version?: string;
  uid?: string;
  /** What is left of the caller's deadline, if it set one. */
  timeoutMs?: number;
  /** Aborted when the caller goes away: its queries leave the queue and their model calls are cancelled if nobody else waits. */
  signal?: CancelSignal;
}

/** The router's defaults for the per-model knobs a model leaves at 0 or unset. */
export interface BatchingDefaults {
  maxInFlightPerReplica: number;
  maxQueueLength: number;
}

export const defaultBatchingDefaults: BatchingDefaults = { maxInFlightPerReplica: 2, maxQueueLength: 10_000 };

export interface QueryProcessorDeps {
  /** Undefined until the first snapshot from the registry has arrived. */
  config: () => ConfigView | undefined;
  models: ModelClientFactory;
  /** The application's selection policy: which linked models answer each query, and how their answers combine. */
  selector: ModelSelector;
  clock: Clock;
  limits: InputLimits;
  /** The wait when neither the application's SLO nor the caller bounds it. */
  maxWaitMs: number;
  batching?: BatchingDefaults;
  /** Tuning of every version's batcher (tests shorten or lengthen the timings). */
  batcher?: Partial<Omit<VersionBatcherOptions, "clock">>;
  /** Shared by the applications that enable caching; none: caching is off everywhere. */
  cache?: PredictionCache;
  /** Record the outputs of applications whose policy learns in `cache` (even with caching off), so feedback can join them. */
  recordForFeedback?: (app: Application) => boolean;
  /** Told of requests, batches and answers (metrics, traces). */
  observer?: QueryObserver;
}

/**
 * Answers a batch of queries for one application: resolve the model version,
 * answer what the prediction cache holds, queue the rest on the version's
 * batcher (which forms batches and picks replicas), and answer the
 * application's default for anything not answered by the deadline.
 */
export class QueryProcessor {
  private nextQueryId = 1n;
  private nextBatchId = 1n;
  private readonly batchers = new Map<string, { batcher: VersionBatcher<PendingQuery>; model: Model; replicas: ReplicaSet | undefined }>();
  private readonly batching: BatchingDefaults;
  private currentVersions: ReadonlyMap<string, string> | undefined;

  constructor(private readonly deps: QueryProcessorDeps) {
    this.batching = deps.batching ?? defaultBatchingDefaults;
  }

  async query(application: string, inputs: Inputs | undefined, options: QueryOptions = {}): Promise<Answers> {
    const view = this.deps.config();
    if (view === undefined) throw unavailable("the router has not received the configuration from the registry yet");
    const app = view.applications.get(application);
    if (app === undefined) throw notFound(`application "${application}" not found`);
    const count = validateInputs(inputs, app.inputType, this.deps.limits);
    const deadline = this.deps.clock.now() + this.waitMs(app, options.timeoutMs);
    const picked = this.deps.selector.select(app, options.uid ?? "", count, Math.max(0, deadline - this.deps.clock.now()));
    const plan = picked instanceof Promise ? await picked : picked;
    const firstId = this.nextQueryId;
    this.nextQueryId += BigInt(count);
    const cache = this.deps.cache;
    const record = cache !== undefined && !app.cacheEnabled && (this.deps.recordForFeedback?.(app) ?? false);
    const request = new PendingRequest(app, firstId, count, plan, record, this.deps.observer?.requestStarted(application));
    if (plan.arms.every((arms) => arms.length === 0)) return request.defaultAll(NO_MODEL_EXPLANATION, "no_model");

    // Each arm resolves once per request: a version switch mid-request cannot split it.
    const targets = new Map<string, Target>();
    for (const arms of plan.arms) {
      for (const arm of arms) {
        if (targets.has(arm)) continue;
        const target = this.resolveTarget(view, arm, options.version);
        if ("batcher" in target) request.observation?.routed(target.batcher.key);
        targets.set(arm, target);
      }
    }

    const source = inputs as Inputs;
    const members: PendingQuery[] = [];
    const failures: Array<[QuerySlot, string, { explanation: string; outcome: QueryOutcome }]> = [];
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const arms = plan.arms[i] ?? [];
      const slot = new QuerySlot(request, i, Math.max(1, arms.length));
      if (arms.length === 0) failures.push([slot, "", { explanation: NO_MODEL_EXPLANATION, outcome: "no_model" }]);
      for (const arm of arms) {
        const target = targets.get(arm) as Target;
        if ("explanation" in target) failures.push([slot, arm, target]);
        else members.push(new PendingQuery(slot, arm, source, i, offset, deadline, target.batcher));
      }
      offset += source.lengths[i] ?? 0;
    }
    for (const [slot, arm, failure] of failures) slot.report(arm, "", { kind: "default", ...failure });
    if (options.signal?.aborted) {
      this.expire(members, CANCELLED_EXPLANATION, "cancelled");
      return request.answers();
    }

    const groups = new Map<VersionBatcher<PendingQuery>, PendingQuery[]>();
    for (const q of members) {
      const group = groups.get(q.batcher);
      if (group === undefined) groups.set(q.batcher, [q]);
      else group.push(q);
    }
    for (const [batcher, group] of groups) {
      const toQueue = app.cacheEnabled && cache ? this.answerFromCache(batcher.key, group) : group;
      if (toQueue.length === 0) continue;
      const late = batcher.lateAdmission(toQueue.length, deadline);
      if (late === undefined && batcher.enqueue(toQueue)) continue;
      const reason =
        late === undefined
          ? `model ${batcher.key} has ${batcher.queueLength()} queries waiting (limit ${batcher.queueCapacity()}): the router is overloaded, retry later`
          : `model ${batcher.key} would answer in about ${Math.ceil(late.predictedMs)} ms (${late.ahead} queries ahead), after the deadline ${Math.max(0, Math.round(deadline - this.deps.clock.now()))} ms away: the router is overloaded, retry later`;
      if (!app.defaultOnOverload) {
        // The request fails as a whole: none of its queries may be answered or sent later.
        for (const q of members) this.withdraw(q);
        request.observation?.refused(count);
        throw resourceExhausted(reason);
      }
      for (const q of toQueue) this.settle(q, { kind: "default", explanation: `Overloaded: ${reason}`, outcome: "overloaded" });
    }
    if (request.remaining > 0) {
      const cancelTimer = this.deps.clock.setTimer(deadline - this.deps.clock.now(), () => this.expire(members, SLO_EXPLANATION, "slo_exceeded"));
      const onAbort = () => this.expire(members, CANCELLED_EXPLANATION, "cancelled");
      options.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        await request.done;
      } finally {
        cancelTimer();
        options.signal?.removeEventListener("abort", onAbort);
      }
    }
    return request.answers();
  }

  /** The model version an arm names and its batcher, or why there is none. */
  private resolveTarget(view: ConfigView, arm: string, requested: string | undefined): Target {
    const { model: modelName, version: armVersion } = parseArm(arm);
    const model = this.resolveVersion(view, modelName, armVersion ?? requested);
    if (typeof model === "string") return { explanation: model, outcome: "no_version" };
    const key = modelKey(model.name, model.version);
    const batcher = this.batcherFor(key, model, view);
    if (batcher.activeReplicas() === 0) return { explanation: `No ready replica of model ${key}`, outcome: "no_replica" };
    return { batcher };
  }

  /**
   * Follows configuration changes: drops the batchers of deleted versions,
   * hands replica changes to the batchers at once, and drops cached outputs
   * of a model's previous current version.
   */
  onConfig(view: ConfigView): void {
    for (const [key, entry] of this.batchers) {
      if (!view.models.has(key)) {
        entry.batcher.close();
        this.batchers.delete(key);
        continue;
      }
      const set = view.replicaSets.get(key);
      if (set !== entry.replicas) {
        entry.replicas = set;
        entry.batcher.setReplicas(readyEndpoints(set));
      }
    }
    const cache = this.deps.cache;
    if (cache !== undefined && this.currentVersions !== undefined) {
      for (const [name, version] of this.currentVersions) {
        if (view.currentVersions.get(name) !== version) cache.dropModelVersion(modelKey(name, version));
      }
    }
    this.currentVersions = view.currentVersions;
  }

  /**
   * Why a query of `application` would be refused for overload right now, so
   * that a gateway in this process can refuse it before reading its inputs (a
   * refusal then costs next to nothing); undefined when it would be admitted,
   * when the application answers the default on overload, or when the router
   * cannot tell yet. Refuses only if every linked model's current version would.
   */
  overloadReason(application: string): string | undefined {
    const view = this.deps.config();
    const app = view?.applications.get(application);
    if (view === undefined || app === undefined || app.defaultOnOverload || app.linkedModels.length === 0) return undefined;
    const deadline = this.deps.clock.now() + this.waitMs(app, undefined);
    let reason: string | undefined;
    for (const name of app.linkedModels) {
      const version = view.currentVersions.get(name);
      const entry = version === undefined ? undefined : this.batchers.get(modelKey(name, version));
      const late = entry?.batcher.lateAdmission(1, deadline);
      if (entry === undefined || late === undefined) return undefined;
      reason ??= `model ${entry.batcher.key} would answer in about ${Math.ceil(late.predictedMs)} ms (${late.ahead} queries ahead), after the SLO: the router is overloaded, retry later`;
    }
    return reason;
  }

  /** Queue length and bound per model version, for metrics. */
  queues(): Map<string, { depth: number; capacity: number }> {
    const out = new Map<string, { depth: number; capacity: number }>();
    for (const [key, { batcher }] of this.batchers) out.set(key, { depth: batcher.queueLength(), capacity: batcher.queueCapacity() });
    return out;
  }

  close(): void {
    for (const { batcher } of this.batchers.values()) batcher.close();
    this.batchers.clear();
  }

  /** Answers the hits; returns the queries that need the model (misses, and those an identical call in flight could not answer). */
  private answerFromCache(key: string, queries: PendingQuery[]): PendingQuery[] {
    const toQueue: PendingQuery[] = [];
    for (const q of queries) if (this.lookup(key, q)) toQueue.push(q);
    return toQueue;
  }

  /** True when `q` must go to the model (a miss: it holds the ticket). */
  private lookup(key: string, q: PendingQuery): boolean {
    const cache = this.deps.cache as PredictionCache;
    const r = cache.lookup(key, inputKeyBytes(q), (output) => this.heardFromIdentical(key, q, output));
    if (r.kind === "hit") {
      this.settle(q, { kind: "answer", output: r.output, outcome: "cached" });
      return false;
    }
    if (r.kind === "joined") return false;
    q.ticket = r.ticket;
    return true;
  }

  /** An identical query's model call ended: take its output, or go to the model ourselves. */
  private heardFromIdentical(key: string, q: PendingQuery, output: string | undefined): void {
    if (q.settled) return;
    if (output !== undefined) {
      this.settle(q, { kind: "answer", output, outcome: "cached" });
      return;
    }
    if (this.lookup(key, q) && !q.batcher.enqueue([q])) {
      q.abandonTicket(this.deps.cache);
      this.settle(q, { kind: "default", explanation: `Overloaded: model ${key} has no room in its queue`, outcome: "overloaded" });
    }
  }

  private expire(queries: readonly PendingQuery[], explanation: string, outcome: QueryOutcome): void {
    for (const q of queries) if (!q.settled) this.settle(q, { kind: "default", explanation, outcome });
  }

  /** The one place a model's answer for a query lands: first answer wins; it leaves the queue, and its cache ticket is released. */
  private settle(q: PendingQuery, result: MemberResult): void {
    if (q.settled) return;
    this.withdraw(q);
    q.slot.report(q.arm, q.batcher.key, result);
  }

  /** Takes a query out of its queue and the cache without answering it. */
  private withdraw(q: PendingQuery): void {
    q.settled = true;
    q.batcher.release(q);
    q.abandonTicket(this.deps.cache);
  }

  private batcherFor(key: string, model: Model, view: ConfigView): VersionBatcher<PendingQuery> {
    let entry = this.batchers.get(key);
    if (entry === undefined) {
      const batcher: VersionBatcher<PendingQuery> = new VersionBatcher<PendingQuery>(
        key,
        this.settingsOf(model),
        { send: (d) => this.send(batcher, d), hopeless: (queries) => this.expire(queries, SLO_EXPLANATION, "hopeless") },
        { ...this.deps.batcher, clock: this.deps.clock },
      );
      entry = { batcher, model, replicas: undefined };
      this.batchers.set(key, entry);
    } else if (entry.model !== model) {
      // Views are immutable: a new Model object is the only sign its knobs may have changed.
      entry.model = model;
      entry.batcher.configure(this.settingsOf(model));
    }
    const set = view.replicaSets.get(key);
    if (entry.replicas !== set || entry.batcher.activeReplicas() === 0) {
      entry.replicas = set;
      entry.batcher.setReplicas(readyEndpoints(set));
    }
    return entry.batcher;
  }

  private settingsOf(model: Model): BatcherSettings {
    const b = model.batching;
    return {
      maxBatchSize: model.maxBatchSize,
      fixedSize: (b?.fixedSize ?? false) && model.maxBatchSize > 0,
      maxWaitMs: b?.maxWaitMicros === undefined ? undefined : b.maxWaitMicros / 1000,
      maxInFlightPerReplica: b?.maxInFlightPerReplica || this.batching.maxInFlightPerReplica,
      maxQueueLength: b?.maxQueueLength || this.batching.maxQueueLength,
    };
  }

  /** Calls the replica with one packed batch and reports the outcome to the batcher. */
  private send(batcher: VersionBatcher<PendingQuery>, d: Dispatch<PendingQuery>): void {
    const inputs = packInputs(d.items, d.padTo);
    const observed = this.deps.observer?.batchSent(
      batcher.key,
      d.replica,
      d.padTo,
      d.items.map((q) => q.request.observation),
    );
    const call = () => this.deps.models.clientFor(d.replica).predict(inputs, this.nextBatchId++, { signal: d.controller.signal, timeoutMs: d.timeoutMs });
    (observed ? observed.run(call) : call()).then(
      (outputs) => {
        observed?.ended(undefined);
        this.answerBatch(batcher, d, outputs);
      },
      (err: unknown) => {
        observed?.ended(err);
        this.batchFailed(batcher, d, err);
      },
    );
  }

  private answerBatch(batcher: VersionBatcher<PendingQuery>, d: Dispatch<PendingQuery>, outputs: Output[]): void {
    batcher.finished(d, { kind: "ok" });
    const key = batcher.key;
    if (outputs.length !== d.padTo) {
      // Nothing says which input a surplus or missing output belongs to: trust none of them.
      const explanation = `Model ${key} returned ${outputs.length} outputs for ${d.padTo} inputs`;
      for (const q of d.items) this.settle(q, { kind: "default", explanation, outcome: "model_error" });
      return;
    }
    for (let i = 0; i < d.items.length; i++) {
      const q = d.items[i] as PendingQuery;
      if (q.settled) continue;
      const out = outputs[i];
      if (out === undefined) continue;
      if (out.result.case === "value") {
        if (q.ticket !== undefined) this.deps.cache?.complete(q.ticket, out.result.value);
        else if (q.request.recordOutputs) this.deps.cache?.record(key, inputKeyBytes(q), out.result.value);
        this.settle(q, { kind: "answer", output: out.result.value, outcome: "predicted" });
      } else {
        const error = out.result.case === "error" ? out.result.value : "empty output";
        this.settle(q, { kind: "default", explanation: `Model ${key} failed on this input: ${error}`, outcome: "model_error" });
      }
    }
  }

  private batchFailed(batcher: VersionBatcher<PendingQuery>, d: Dispatch<PendingQuery>, err: unknown): void {
    // Cancelled by us (nobody waits any more) or timed out at the latest deadline: its queries have their defaults.
    if (d.controller.signal.aborted || (err instanceof ConnectError && err.code === Code.DeadlineExceeded)) {
      batcher.finished(d, { kind: "abandoned" });
      return;
    }
    const code = err instanceof ConnectError ? err.code : Code.Unknown;
    const message = err instanceof ConnectError ? err.rawMessage : String(err);
    const giveUp = batcher.finished(d, { kind: "failed", retryable: RETRYABLE.has(code) });
    const explanation = `Model ${batcher.key} replica ${d.replica} failed: ${message}`;
    for (const q of giveUp) this.settle(q, { kind: "default", explanation, outcome: "batch_failed" });
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

  /** The effective deadline: the smaller of the application's SLO and what is left of the caller's deadline. */
  private waitMs(app: Application, callerTimeoutMs: number | undefined): number {
    let wait = this.deps.maxWaitMs;
    if (app.sloMicros > 0n) wait = Math.min(wait, Number(app.sloMicros) / 1000);
    if (callerTimeoutMs !== undefined) wait = Math.min(wait, callerTimeoutMs);
    return Math.max(0, wait);
  }
}

/** Failures of the replica rather than of the batch: another replica may answer. */
const RETRYABLE = new Set<Code>([Code.Unavailable, Code.Unknown, Code.Internal, Code.Aborted, Code.Canceled, Code.ResourceExhausted]);

function readyEndpoints(set: ReplicaSet | undefined): string[] {
  const out: string[] = [];
  if (set !== undefined) for (const r of set.replicas) if (r.state === ReplicaState.READY && r.endpoint !== "") out.push(r.endpoint);
  return out;
}

/** Where an arm of a request goes, or why it cannot. */
type Target = { batcher: VersionBatcher<PendingQuery> } | { explanation: string; outcome: QueryOutcome };

/** What one model version said for one query. */
type MemberResult = { kind: "answer"; output: string; outcome: "predicted" | "cached" } | { kind: "default"; explanation: string; outcome: QueryOutcome };

/** One input of a request on its way to one model version, through cache, queue and model; it references its input, never copies it. */
class PendingQuery implements BatchItem, InputRef {
  settled = false;
  queued: BatchItem["queued"] = undefined;
  inFlight: BatchItem["inFlight"] = undefined;
  attempts = 0;
  /** Set when this query's model call will fill the cache (and answer identical queries waiting). */
  ticket: CacheTicket | undefined = undefined;

  readonly request: PendingRequest;

  constructor(
    readonly slot: QuerySlot,
    /** The policy's name for the model: a linked model, or a split's "model:version". */
    readonly arm: string,
    readonly source: Inputs,
    /** Its position in the request (and its answer's). */
    readonly index: number,
    readonly offset: number,
    readonly deadline: number,
    readonly batcher: VersionBatcher<PendingQuery>,
  ) {
    this.request = slot.request;
  }

  abandonTicket(cache: PredictionCache | undefined): void {
    if (this.ticket === undefined) return;
    cache?.abandon(this.ticket);
    this.ticket = undefined;
  }
}

/**
 * One input of a request and the models chosen for it. When every model has
 * answered or given up (the deadline makes all of them give up), the
 * policy combines the answers that arrived; with none, the default.
 */
class QuerySlot {
  private readonly answers = new Map<string, string>();
  private readonly modelKeys = new Map<string, string>();
  private predicted = false;
  private failure: { explanation: string; outcome: QueryOutcome } | undefined;

  constructor(
    readonly request: PendingRequest,
    private readonly index: number,
    private pending: number,
  ) {}

  report(arm: string, modelKey: string, result: MemberResult): void {
    if (result.kind === "answer") {
      this.answers.set(arm, result.output);
      this.modelKeys.set(arm, modelKey);
      if (result.outcome === "predicted") this.predicted = true;
    } else {
      this.failure ??= result;
    }
    if (--this.pending === 0) this.finish();
  }

  private finish(): void {
    const combined = this.answers.size > 0 ? this.request.plan.combine(this.answers) : undefined;
    if (combined === undefined) {
      const failure = this.failure ?? { explanation: NO_MODEL_EXPLANATION, outcome: "no_model" as const };
      this.request.setDefault(this.index, failure.explanation, failure.outcome);
      return;
    }
    const models = combined.models.map((arm) => this.modelKeys.get(arm) ?? arm);
    this.request.setAnswer(this.index, combined.output, this.predicted ? "predicted" : "cached", models, Math.min(1, Math.max(0, combined.confidence)));
  }
}

/** The answers of one request; `done` resolves when every query has one. */
class PendingRequest {
  private readonly results: Array<QueryResult | undefined>;
  private readonly outcomes: QueryOutcome[];
  remaining: number;
  readonly done: Promise<void>;
  private resolve: () => void = () => {};

  constructor(
    private readonly app: Application,
    private readonly firstId: bigint,
    count: number,
    readonly plan: SelectionPlan,
    /** Store model outputs in the prediction cache for the feedback join. */
    readonly recordOutputs: boolean,
    readonly observation: RequestObservation | undefined,
  ) {
    this.results = new Array<QueryResult | undefined>(count).fill(undefined);
    this.outcomes = new Array<QueryOutcome>(count);
    this.remaining = count;
    this.done = new Promise((resolve) => (this.resolve = resolve));
  }

  set(i: number, result: QueryResult, outcome: QueryOutcome): void {
    if (this.results[i] !== undefined) return;
    this.results[i] = result;
    this.outcomes[i] = outcome;
    if (--this.remaining === 0) this.resolve();
  }

  answers(): Answers {
    const answers = { results: this.results as QueryResult[], outcomes: this.outcomes };
    this.observation?.answered(answers);
    return answers;
  }

  /** Every query gets the default: the request never reached a model. */
  defaultAll(explanation: string, outcome: QueryOutcome): Answers {
    for (let i = 0; i < this.results.length; i++) this.setDefault(i, explanation, outcome);
    return this.answers();
  }

  setAnswer(i: number, output: string, outcome: "predicted" | "cached", models: string[], confidence: number): void {
    this.set(
      i,
      { $typeName: "clipper.v1.QueryResult", queryId: this.firstId + BigInt(i), output, default: false, defaultExplanation: "", models, confidence },
      outcome,
    );
  }

  setDefault(i: number, explanation: string, outcome: QueryOutcome): void {
    const result: QueryResult = {
      $typeName: "clipper.v1.QueryResult",
      queryId: this.firstId + BigInt(i),
      output: this.app.defaultOutput,
      default: true,
      defaultExplanation: explanation,
      models: [],
      confidence: 0,
    };
    this.set(i, result, outcome);
  }
}
