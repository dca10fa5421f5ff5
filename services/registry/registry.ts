import { clone, create, equals } from "@bufbuild/protobuf";
import type { CreateApplicationRequest, CreateModelRequest, UpdateApplicationRequest, UpdateModelRequest } from "../../gen/clipper/v1/management_service_pb.js";
import {
  type Application,
  ApplicationSchema,
  BatchingConfigSchema,
  type ConfigChange,
  ConfigChangeSchema,
  type ConfigSnapshot,
  type CurrentVersion,
  type Model,
  ModelSchema,
  type ModelVersionKey,
  type ReplicaSet,
  ReplicaSetSchema,
  SelectionPolicySchema,
} from "../../gen/clipper/v1/resources_pb.js";
import {
  alreadyExists,
  Code,
  ConnectError,
  failedPrecondition,
  inputTypeName,
  invalidArgument,
  type Logger,
  notFound,
  resourceExhausted,
  unavailable,
  validateName,
  validateVersion,
} from "../shared/index.js";
import { applicationDifferences } from "./application-definition.js";
import { ConfigState } from "./config-state.js";
import {
  DEFAULT_POLICY_STATE_BOUNDS,
  type PolicyStateBounds,
  type PolicyStateSwap,
  type RegistryStore,
  StoreConflictError,
  type StoredPolicyState,
} from "./store.js";
import {
  DEFAULT_REGISTRY_LIMITS,
  DEFAULT_SLO_MICROS,
  LIMITS,
  type RegistryLimits,
  validateBatching,
  validateDesiredReplicas,
  validateInputType,
  validateLabels,
  validateNewModel,
  validatePolicyState,
  validatePolicyStateKey,
  validateReplicaSet,
  validateSelectionPolicy,
  validateSlo,
  validateText,
} from "./validation.js";
import { WatchHub, type WatchSubscription } from "./watch-hub.js";

export interface RegistryOptions {
  store: RegistryStore;
  logger?: Logger;
  /** Milliseconds since the epoch; stamps Model.created_at_ms. */
  now?: () => number;
  /** Changes buffered per WatchConfig subscriber before it is cut off. */
  maxWatchBacklog?: number;
  /** Writes waiting for their turn before new ones are refused. */
  maxPendingWrites?: number;
  limits?: Partial<RegistryLimits>;
  /** Learned state of one application's users (per uid) kept before the least recently used go (DEFAULT_POLICY_STATE_BOUNDS). */
  policyStateBounds?: Partial<PolicyStateBounds>;
}

/** The content of a ConfigChange; the registry assigns revisions when it commits. */
type ChangeContent = Exclude<ConfigChange["change"], { case: undefined }>;

/** What a write computes against the current state: its changes, and its answer once they are applied. */
interface WritePlan<T> {
  changes: ChangeContent[];
  result: () => T;
}

/**
 * Clipper's configuration and its rules: applications, model versions, current
 * versions, app→model links and observed replicas. Reads come from memory;
 * every write is validated against the state, committed to the store as one
 * atomic set of changes, applied to memory and published to watchers, one write
 * at a time, so watchers see changes in revision order. One registry process
 * owns the store.
 *
 * Rules chosen here (Clipper leaves them open):
 * - An application created with slo_micros 0 gets the default SLO (100 ms).
 * - All versions of a model take the same input type.
 * - Deleting the current version while other versions exist is
 *   FAILED_PRECONDITION: choose another current version first, so that linked
 *   applications never silently lose their model. Deleting the last version
 *   (or the whole model) clears the current version and removes the model's
 *   links from every application.
 * - Linking twice is ALREADY_EXISTS; unlinking a model that is not linked is NOT_FOUND.
 * - ReportReplicas replaces the version's replica set; an empty set removes it.
 *   Reporting replicas of an unknown version is NOT_FOUND unless the set is
 *   empty, and deleting a version also clears its replicas.
 */
export class Registry {
  private state: ConfigState;
  private readonly hub: WatchHub;
  private readonly now: () => number;
  private readonly maxPendingWrites: number;
  private readonly limits: RegistryLimits;
  private readonly policyStateBounds: PolicyStateBounds;
  private writeQueue: Promise<void> = Promise.resolve();
  private pendingWrites = 0;
  /** Set after a failed commit: memory may differ from the store until it is reloaded. */
  private stale = false;

  private constructor(
    private readonly store: RegistryStore,
    snapshot: ConfigSnapshot,
    private readonly options: RegistryOptions,
  ) {
    this.state = ConfigState.fromSnapshot(snapshot);
    this.hub = new WatchHub(options.maxWatchBacklog ?? 10_000);
    this.now = options.now ?? Date.now;
    this.maxPendingWrites = options.maxPendingWrites ?? 1024;
    this.limits = { ...DEFAULT_REGISTRY_LIMITS, ...options.limits };
    this.policyStateBounds = { ...DEFAULT_POLICY_STATE_BOUNDS, ...options.policyStateBounds };
  }

  static async open(options: RegistryOptions): Promise<Registry> {
    return new Registry(options.store, await options.store.load(), options);
  }

  get revision(): bigint {
    return this.state.revision;
  }

  /** The number of open WatchConfig subscriptions. */
  get watchers(): number {
    return this.hub.size;
  }

  /** Ends every WatchConfig stream with UNAVAILABLE, so clients reconnect (to a restarted registry). */
  endWatches(): void {
    this.hub.endAll(unavailable("registry is shutting down; reconnect"));
  }

  /** Ends every watch, waits for queued writes and closes the store. */
  async close(): Promise<void> {
    this.endWatches();
    await this.writeQueue;
    await this.store.close();
  }

  // ---- applications

  getApplication(name: string): Application {
    validateName("application", name);
    return this.requireApplication(name);
  }

  listApplications(): Application[] {
    return this.state.applicationList();
  }

  async createApplication(req: CreateApplicationRequest): Promise<Application> {
    validateName("application", req.name);
    validateInputType("input_type", req.inputType);
    validateSlo(req.sloMicros);
    validateText("default_output", req.defaultOutput, LIMITS.maxDefaultOutputBytes);
    validateText("description", req.description, LIMITS.maxDescriptionBytes);
    if (req.policy !== undefined) validateSelectionPolicy(req.policy);
    // A new application learns from nothing, even if one of its name was deleted before its state was cleared.
    if (this.state.application(req.name) === undefined) await this.storeCall(() => this.store.clearPolicyStates(req.name));
    return this.write((s) => {
      const existing = s.application(req.name);
      if (existing) {
        // Idempotent: creating the application that exists is a no-op (a re-run notebook); another definition is refused.
        const differences = applicationDifferences(existing, req);
        if (differences.length === 0) return { changes: [], result: () => this.requireApplication(req.name) };
        throw alreadyExists(`application "${req.name}" already exists with a different definition: ${differences.join("; ")}`);
      }
      if (s.applicationCount >= this.limits.maxApplications) {
        throw resourceExhausted(
          `application "${req.name}" would be one too many: the registry holds at most ${this.limits.maxApplications} applications (--max-applications)`,
        );
      }
      const app = create(ApplicationSchema, {
        name: req.name,
        inputType: req.inputType,
        defaultOutput: req.defaultOutput,
        sloMicros: req.sloMicros === 0n ? DEFAULT_SLO_MICROS : req.sloMicros,
        description: req.description,
        cacheEnabled: req.cacheEnabled,
        defaultOnOverload: req.defaultOnOverload,
        ...(req.policy !== undefined ? { policy: clone(SelectionPolicySchema, req.policy) } : {}),
      });
      return { changes: [{ case: "applicationUpserted", value: app }], result: () => this.requireApplication(req.name) };
    });
  }

  async updateApplication(req: UpdateApplicationRequest): Promise<Application> {
    validateName("application", req.name);
    if (req.sloMicros !== undefined) validateSlo(req.sloMicros);
    if (req.defaultOutput !== undefined) validateText("default_output", req.defaultOutput, LIMITS.maxDefaultOutputBytes);
    if (req.description !== undefined) validateText("description", req.description, LIMITS.maxDescriptionBytes);
    if (req.policy !== undefined) validateSelectionPolicy(req.policy);
    return this.write(() => {
      const app = this.requireApplication(req.name);
      const updated = clone(ApplicationSchema, app);
      if (req.sloMicros !== undefined) updated.sloMicros = req.sloMicros === 0n ? DEFAULT_SLO_MICROS : req.sloMicros;
      if (req.defaultOutput !== undefined) updated.defaultOutput = req.defaultOutput;
      if (req.description !== undefined) updated.description = req.description;
      if (req.cacheEnabled !== undefined) updated.cacheEnabled = req.cacheEnabled;
      if (req.defaultOnOverload !== undefined) updated.defaultOnOverload = req.defaultOnOverload;
      // Replaced whole, never merged: routers see the old policy or the new one.
      if (req.policy !== undefined) updated.policy = clone(SelectionPolicySchema, req.policy);
      const changes: ChangeContent[] = equals(ApplicationSchema, app, updated) ? [] : [{ case: "applicationUpserted", value: updated }];
      return { changes, result: () => this.requireApplication(req.name) };
    });
  }

  /** Removes the application and, with it, its links and its learned policy state. */
  async deleteApplication(name: string): Promise<void> {
    validateName("application", name);
    await this.write(() => {
      this.requireApplication(name);
      return { changes: [{ case: "applicationDeleted", value: name }], result: () => undefined };
    });
    // After the deletion no router can write the state any more. Should this fail, creating the
    // application again clears it first.
    await this.store
      .clearPolicyStates(name)
      .catch((err: unknown) => this.options.logger?.error({ err, application: name }, "could not clear a deleted application's policy state"));
  }

  // ---- models

  /** The version, or the current version when `version` is empty. */
  getModel(name: string, version: string): { model: Model; currentVersion: string } {
    validateName("model", name);
    const current = this.state.currentVersion(name);
    if (version === "") {
      if (current === undefined) throw notFound(`model "${name}" not found`);
      return { model: this.requireModel(name, current), currentVersion: current };
    }
    validateVersion(version);
    return { model: this.requireModel(name, version), currentVersion: current ?? "" };
  }

  listModels(name: string): { models: Model[]; currentVersions: CurrentVersion[] } {
    if (name !== "") validateName("model", name);
    const names = name === "" ? this.state.modelNames() : this.state.versions(name).length > 0 ? [name] : [];
    return {
      models: names.flatMap((n) => this.state.versions(n)),
      currentVersions: names.flatMap((n) => {
        const version = this.state.currentVersion(n);
        return version === undefined ? [] : [{ $typeName: "clipper.v1.CurrentVersion" as const, modelName: n, version }];
      }),
    };
  }

  async createModel(req: CreateModelRequest): Promise<{ model: Model; currentVersion: string }> {
    const requested = req.model;
    validateNewModel(requested, this.limits.maxDesiredReplicas);
    const { name, version } = requested;
    return this.write((s) => {
      if (s.model(name, version)) throw alreadyExists(`model "${name}" version "${version}" already exists`);
      if (s.modelVersionCount >= this.limits.maxModelVersions) {
        throw resourceExhausted(
          `model "${name}" version "${version}" would be one too many: the registry holds at most ${this.limits.maxModelVersions} model versions (--max-model-versions)`,
        );
      }
      const existing = s.versions(name)[0];
      if (existing && existing.inputType !== requested.inputType) {
        throw failedPrecondition(
          `model "${name}" version "${version}" takes ${inputTypeName(requested.inputType)} but the model's other versions take ${inputTypeName(existing.inputType)}`,
        );
      }
      const model = clone(ModelSchema, requested);
      model.createdAtMs = BigInt(this.now());
      const changes: ChangeContent[] = [{ case: "modelUpserted", value: model }];
      if (s.currentVersion(name) === undefined || req.setCurrent) {
        changes.push({ case: "currentVersionSet", value: { $typeName: "clipper.v1.CurrentVersion", modelName: name, version } });
      }
      return { changes, result: () => ({ model: this.requireModel(name, version), currentVersion: s.currentVersion(name) ?? "" }) };
    });
  }

  async updateModel(req: UpdateModelRequest): Promise<Model> {
    validateName("model", req.name);
    validateVersion(req.version);
    if (req.desiredReplicas !== undefined) validateDesiredReplicas(req.desiredReplicas, "desired_replicas", this.limits.maxDesiredReplicas);
    validateLabels(req.labels);
    if (req.batching !== undefined) validateBatching(req.batching, req.maxBatchSize);
    return this.write(() => {
      const model = this.requireModel(req.name, req.version);
      const updated = clone(ModelSchema, model);
      if (req.desiredReplicas !== undefined) updated.desiredReplicas = req.desiredReplicas;
      if (req.maxBatchSize !== undefined) updated.maxBatchSize = req.maxBatchSize;
      if (req.batching !== undefined) updated.batching = clone(BatchingConfigSchema, req.batching);
      if (updated.batching?.fixedSize && updated.maxBatchSize === 0) {
        throw invalidArgument("batching.fixed_size needs max_batch_size: set it in the same update or before");
      }
      updated.labels = req.replaceLabels ? { ...req.labels } : { ...model.labels, ...req.labels };
      validateLabels(updated.labels);
      const changes: ChangeContent[] = equals(ModelSchema, model, updated) ? [] : [{ case: "modelUpserted", value: updated }];
      return { changes, result: () => this.requireModel(req.name, req.version) };
    });
  }

  /** Deletes one version, or every version when `version` is empty; returns what was deleted. */
  async deleteModel(name: string, version: string): Promise<ModelVersionKey[]> {
    validateName("model", name);
    if (version !== "") validateVersion(version);
    return this.write((s) => {
      const versions = s.versions(name).map((m) => m.version);
      if (versions.length === 0) throw notFound(`model "${name}" not found`);
      const current = s.currentVersion(name);
      let doomed = versions;
      if (version !== "") {
        if (!versions.includes(version)) throw notFound(`model "${name}" has no version "${version}"`);
        if (version === current && versions.length > 1) {
          throw failedPrecondition(
            `version "${version}" is the current version of model "${name}", which has other versions: make another one current (SetModelVersion) first, or delete the whole model`,
          );
        }
        doomed = [version];
      }
      const keys = doomed.map((v): ModelVersionKey => ({ $typeName: "clipper.v1.ModelVersionKey", modelName: name, version: v }));
      const changes: ChangeContent[] = [];
      for (const key of keys) {
        changes.push({ case: "modelDeleted", value: key });
        if (s.replicaSet(name, key.version)) {
          changes.push({ case: "replicasReported", value: create(ReplicaSetSchema, { modelName: name, modelVersion: key.version }) });
        }
      }
      if (doomed.length === versions.length) {
        if (current !== undefined) changes.push({ case: "currentVersionCleared", value: name });
        for (const app of s.applicationList()) {
          if (!app.linkedModels.includes(name)) continue;
          app.linkedModels = app.linkedModels.filter((m) => m !== name);
          changes.push({ case: "applicationUpserted", value: app });
        }
      }
      return { changes, result: () => keys };
    });
  }

  /** Makes `version` current; returns the previous current version ("" when there was none). */
  async setModelVersion(name: string, version: string): Promise<string> {
    validateName("model", name);
    validateVersion(version);
    return this.write((s) => {
      this.requireModel(name, version);
      const previous = s.currentVersion(name) ?? "";
      const changes: ChangeContent[] =
        previous === version ? [] : [{ case: "currentVersionSet", value: { $typeName: "clipper.v1.CurrentVersion", modelName: name, version } }];
      return { changes, result: () => previous };
    });
  }

  // ---- links

  async linkModel(application: string, modelName: string): Promise<Application> {
    validateName("application", application);
    validateName("model", modelName);
    return this.write((s) => {
      const app = this.requireApplication(application);
      const model = s.versions(modelName)[0];
      if (!model) throw notFound(`model "${modelName}" not found`);
      if (model.inputType !== app.inputType) {
        throw failedPrecondition(
          `model "${modelName}" takes ${inputTypeName(model.inputType)} but application "${application}" takes ${inputTypeName(app.inputType)}`,
        );
      }
      // Idempotent, as Clipper's links were: linking a linked model changes nothing.
      if (app.linkedModels.includes(modelName)) return { changes: [], result: () => this.requireApplication(application) };
      app.linkedModels.push(modelName);
      return { changes: [{ case: "applicationUpserted", value: app }], result: () => this.requireApplication(application) };
    });
  }

  async unlinkModel(application: string, modelName: string): Promise<Application> {
    validateName("application", application);
    validateName("model", modelName);
    return this.write(() => {
      const app = this.requireApplication(application);
      if (!app.linkedModels.includes(modelName)) throw notFound(`model "${modelName}" is not linked to application "${application}"`);
      app.linkedModels = app.linkedModels.filter((m) => m !== modelName);
      return { changes: [{ case: "applicationUpserted", value: app }], result: () => this.requireApplication(application) };
    });
  }

  // ---- replicas

  async reportReplicas(set: ReplicaSet | undefined): Promise<void> {
    validateReplicaSet(set);
    const reported = clone(ReplicaSetSchema, set);
    return this.write((s) => {
      const stored = s.replicaSet(reported.modelName, reported.modelVersion);
      if (reported.replicas.length > 0 && !s.model(reported.modelName, reported.modelVersion)) {
        throw notFound(`model "${reported.modelName}" has no version "${reported.modelVersion}"`);
      }
      const unchanged = stored ? equals(ReplicaSetSchema, stored, reported) : reported.replicas.length === 0;
      return { changes: unchanged ? [] : [{ case: "replicasReported", value: reported }], result: () => undefined };
    });
  }

  listReplicas(modelName: string, modelVersion: string): ReplicaSet[] {
    if (modelName !== "") validateName("model", modelName);
    if (modelVersion !== "") validateVersion(modelVersion);
    return this.state
      .replicaSetList()
      .filter((r) => (modelName === "" || r.modelName === modelName) && (modelVersion === "" || r.modelVersion === modelVersion));
  }

  // ---- policy state

  /**
   * Learned selection-policy state, per application (uid "") and per user.
   * Not configuration: it bypasses the write queue and the revision, and each
   * key has its own version for compare-and-set, so routers updating it
   * concurrently never lose an update (the loser re-applies and retries).
   * Users' states are bounded per application (policyStateBounds): the least
   * recently used users' states go first.
   */
  async getPolicyState(application: string, uid: string): Promise<StoredPolicyState> {
    validatePolicyStateKey(application, uid);
    this.requireApplication(application);
    return this.storeCall(() => this.store.getPolicyState({ application, uid }));
  }

  async updatePolicyState(application: string, uid: string, expectedVersion: bigint, state: Uint8Array): Promise<PolicyStateSwap> {
    validatePolicyStateKey(application, uid);
    validatePolicyState(state);
    this.requireApplication(application);
    return this.storeCall(() => this.store.swapPolicyState({ application, uid }, expectedVersion, state, this.policyStateBounds));
  }

  private async storeCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      this.options.logger?.error({ err }, "registry store policy-state call failed");
      throw unavailable(`registry store failed: ${(err as Error).message}`);
    }
  }

  // ---- watch

  /**
   * The configuration now and every change after it. Taken in one synchronous
   * step, between writes, so no change falls between the snapshot and the
   * subscription. The caller must `end()` the subscription when it stops reading.
   */
  watch(): { snapshot: ConfigSnapshot; changes: WatchSubscription } {
    if (this.stale) throw unavailable("registry is reloading its configuration after a store error; retry");
    return { changes: this.hub.subscribe(), snapshot: this.state.snapshot() };
  }

  // ---- internals

  private requireApplication(name: string): Application {
    const app = this.state.application(name);
    if (!app) throw notFound(`application "${name}" not found`);
    return app;
  }

  private requireModel(name: string, version: string): Model {
    const model = this.state.model(name, version);
    if (model) return model;
    if (this.state.versions(name).length === 0) throw notFound(`model "${name}" not found`);
    throw notFound(`model "${name}" has no version "${version}"`);
  }

  /** Runs writes one at a time, in arrival order, with a bounded queue. */
  private write<T>(plan: (state: ConfigState) => WritePlan<T>): Promise<T> {
    if (this.pendingWrites >= this.maxPendingWrites) {
      return Promise.reject(resourceExhausted(`registry has ${this.pendingWrites} writes waiting; retry later`));
    }
    this.pendingWrites++;
    const run = this.writeQueue.then(() => this.writeNow(plan));
    this.writeQueue = run.then(
      () => undefined,
      () => undefined,
    );
    return run.finally(() => this.pendingWrites--);
  }

  private async writeNow<T>(plan: (state: ConfigState) => WritePlan<T>): Promise<T> {
    if (this.stale) await this.reload();
    const { changes, result } = plan(this.state);
    if (changes.length === 0) return result();
    const base = this.state.revision;
    const stamped = changes.map((c, i) => create(ConfigChangeSchema, { revision: base + BigInt(i + 1), change: c }));
    try {
      await this.store.commit(base, stamped);
    } catch (err) {
      // The outcome is unknown (e.g. a timeout after Redis applied it): reload before the next write.
      this.stale = true;
      await this.reload().catch((e: unknown) => this.options.logger?.warn({ err: e }, "reloading the registry store failed"));
      if (err instanceof StoreConflictError) {
        throw new ConnectError(`${err.message}; the registry reloaded its configuration, retry`, Code.Aborted);
      }
      this.options.logger?.error({ err }, "registry store commit failed");
      throw unavailable(`registry store write failed: ${(err as Error).message}`);
    }
    for (const c of stamped) this.state.apply(c);
    this.hub.publish(stamped);
    return result();
  }

  /** Replaces memory with the store's contents; watchers that may have missed changes must start over. */
  private async reload(): Promise<void> {
    const snapshot = await this.store.load();
    if (snapshot.revision !== this.state.revision) {
      this.state = ConfigState.fromSnapshot(snapshot);
      this.hub.endAll(unavailable("registry reloaded its configuration; reconnect"));
      this.options.logger?.warn({ revision: snapshot.revision }, "registry reloaded its configuration from the store");
    }
    this.stale = false;
  }
}
