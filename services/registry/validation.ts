import { isAbsolute } from "node:path";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import type { BatchingConfig, Model, ModelResources, ModelRuntime, ReplicaSet, SelectionPolicy } from "../../gen/clipper/v1/resources_pb.js";
import { LossKind } from "../../gen/clipper/v1/resources_pb.js";
import { invalidArgument, validateName, validateVersion } from "../shared/index.js";

/** Clipper's default latency objective, used when an application is created with slo_micros 0. */
export const DEFAULT_SLO_MICROS = 100_000n;

/** Limits on how much the registry holds; each is a flag of the registry (docs/limits.md). */
export interface RegistryLimits {
  maxApplications: number;
  /** Model versions of all models together. */
  maxModelVersions: number;
  maxDesiredReplicas: number;
}

export const DEFAULT_REGISTRY_LIMITS: RegistryLimits = { maxApplications: 10_000, maxModelVersions: 10_000, maxDesiredReplicas: 1000 };

/** Limits on stored fields, so one request cannot bloat every WatchConfig snapshot. */
export const LIMITS = {
  maxSloMicros: 3_600_000_000n,
  maxDefaultOutputBytes: 64 * 1024,
  maxDescriptionBytes: 4096,
  maxLabels: 64,
  maxLabelKey: 63,
  maxLabelValue: 256,
  maxDesiredReplicas: 1000,
  maxReplicasPerSet: 1000,
  maxArgv: 256,
  maxRuntimeStringBytes: 4096,
  maxBatchWaitMicros: 10_000_000,
  maxInFlightPerReplica: 64,
  maxQueueLength: 1_000_000,
  maxSplitWeights: 64,
  maxUidBytes: 256,
  maxPolicyStateBytes: 256 * 1024,
} as const;

export function validateInputType(field: string, t: InputType): void {
  if (t === InputType.UNSPECIFIED) throw invalidArgument(`${field} is unspecified: use one of bytes, ints, floats, doubles, strings`);
  if (InputType[t] === undefined) throw invalidArgument(`${field} has unknown value ${t}`);
}

export function validateSlo(sloMicros: bigint): void {
  if (sloMicros < 0n) throw invalidArgument(`slo_micros is ${sloMicros}; it must be >= 0 (0 means the default, ${DEFAULT_SLO_MICROS})`);
  if (sloMicros > LIMITS.maxSloMicros) throw invalidArgument(`slo_micros is ${sloMicros}; the limit is ${LIMITS.maxSloMicros} (one hour)`);
}

export function validateText(field: string, value: string, maxBytes: number): void {
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw invalidArgument(`${field} is ${bytes} bytes long; the limit is ${maxBytes}`);
}

export function validateLabels(labels: Record<string, string>, field = "labels"): void {
  const entries = Object.entries(labels);
  if (entries.length > LIMITS.maxLabels) throw invalidArgument(`${field} has ${entries.length} entries; the limit is ${LIMITS.maxLabels}`);
  for (const [key, value] of entries) {
    if (key === "" || key.length > LIMITS.maxLabelKey)
      throw invalidArgument(`${field} key "${key.slice(0, 80)}" must be 1 to ${LIMITS.maxLabelKey} characters`);
    validateText(`${field}["${key}"]`, value, LIMITS.maxLabelValue);
  }
}

export function validateDesiredReplicas(n: number, field = "desired_replicas", limit: number = LIMITS.maxDesiredReplicas): void {
  if (n > limit) throw invalidArgument(`${field} is ${n}; the limit is ${limit}`);
}

export function validateRuntime(runtime: ModelRuntime | undefined, field = "model.runtime"): void {
  const kind = runtime?.kind;
  switch (kind?.case) {
    case undefined:
      throw invalidArgument(`${field} is not set: give python_closure, command, node_module, java_class or r_function`);
    case "pythonClosure":
      if (!/^[0-9a-f]{64}$/.test(kind.value.artifactDigest)) {
        throw invalidArgument(
          `${field}.python_closure.artifact_digest "${kind.value.artifactDigest.slice(0, 80)}" is not a sha256 hex digest (64 lower-case hex characters)`,
        );
      }
      if (kind.value.pythonVersion !== "" && !/^\d+\.\d+$/.test(kind.value.pythonVersion)) {
        throw invalidArgument(`${field}.python_closure.python_version "${kind.value.pythonVersion.slice(0, 80)}" must look like "3.11"`);
      }
      for (const [i, p] of kind.value.packages.entries()) validateText(`${field}.python_closure.packages[${i}]`, p, LIMITS.maxRuntimeStringBytes);
      if (kind.value.interpreter !== "" && !isAbsolute(kind.value.interpreter))
        throw invalidArgument(`${field}.python_closure.interpreter "${kind.value.interpreter.slice(0, 200)}" must be an absolute path (or empty)`);
      validateText(`${field}.python_closure.interpreter`, kind.value.interpreter, LIMITS.maxRuntimeStringBytes);
      return;
    case "command":
      if (kind.value.argv.length === 0 || kind.value.argv[0] === "") throw invalidArgument(`${field}.command.argv is empty: give the program to run`);
      if (kind.value.argv.length > LIMITS.maxArgv)
        throw invalidArgument(`${field}.command.argv has ${kind.value.argv.length} entries; the limit is ${LIMITS.maxArgv}`);
      for (const [i, a] of kind.value.argv.entries()) validateText(`${field}.command.argv[${i}]`, a, LIMITS.maxRuntimeStringBytes);
      for (const [k, v] of Object.entries(kind.value.env)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw invalidArgument(`${field}.command.env key "${k.slice(0, 80)}" is not a valid environment variable name`);
        validateText(`${field}.command.env["${k}"]`, v, LIMITS.maxRuntimeStringBytes);
      }
      validateText(`${field}.command.working_dir`, kind.value.workingDir, LIMITS.maxRuntimeStringBytes);
      return;
    case "nodeModule":
      if (!isAbsolute(kind.value.modulePath))
        throw invalidArgument(`${field}.node_module.module_path "${kind.value.modulePath.slice(0, 200)}" must be an absolute path`);
      validateText(`${field}.node_module.module_path`, kind.value.modulePath, LIMITS.maxRuntimeStringBytes);
      return;
    case "javaClass":
      if (!/^[0-9a-f]{64}$/.test(kind.value.jarDigest)) {
        throw invalidArgument(
          `${field}.java_class.jar_digest "${kind.value.jarDigest.slice(0, 80)}" is not a sha256 hex digest (64 lower-case hex characters)`,
        );
      }
      if (!/^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$/.test(kind.value.className)) {
        throw invalidArgument(`${field}.java_class.class_name "${kind.value.className.slice(0, 200)}" is not a fully qualified Java class name`);
      }
      validateText(`${field}.java_class.class_name`, kind.value.className, LIMITS.maxRuntimeStringBytes);
      if (kind.value.jvmOptions.length > LIMITS.maxArgv)
        throw invalidArgument(`${field}.java_class.jvm_options has ${kind.value.jvmOptions.length} entries; the limit is ${LIMITS.maxArgv}`);
      for (const [i, o] of kind.value.jvmOptions.entries()) validateText(`${field}.java_class.jvm_options[${i}]`, o, LIMITS.maxRuntimeStringBytes);
      return;
    case "rFunction":
      if (!/^[0-9a-f]{64}$/.test(kind.value.artifactDigest)) {
        throw invalidArgument(
          `${field}.r_function.artifact_digest "${kind.value.artifactDigest.slice(0, 80)}" is not a sha256 hex digest (64 lower-case hex characters)`,
        );
      }
      if (kind.value.format !== "rds" && kind.value.format !== "script")
        throw invalidArgument(`${field}.r_function.format is "${kind.value.format.slice(0, 80)}": give "rds" (clippermodel::save_model's file) or "script"`);
      if (kind.value.packages.length > LIMITS.maxArgv)
        throw invalidArgument(`${field}.r_function.packages has ${kind.value.packages.length} entries; the limit is ${LIMITS.maxArgv}`);
      for (const [i, p] of kind.value.packages.entries()) validateText(`${field}.r_function.packages[${i}]`, p, LIMITS.maxRuntimeStringBytes);
      return;
  }
}

/** Everything CreateModel needs checked in `model` itself (not against other records). */
export function validateNewModel(model: Model | undefined, maxDesiredReplicas: number = LIMITS.maxDesiredReplicas): asserts model is Model {
  if (model === undefined) throw invalidArgument("model is missing");
  validateName("model", model.name);
  validateVersion(model.version);
  validateInputType("model.input_type", model.inputType);
  validateRuntime(model.runtime);
  validateLabels(model.labels, "model.labels");
  validateDesiredReplicas(model.desiredReplicas, "model.desired_replicas", maxDesiredReplicas);
  if (model.batching !== undefined) validateBatching(model.batching, model.maxBatchSize, "model.batching");
  if (model.resources !== undefined) validateResources(model.resources, "model.resources");
}

/** A resource name as Kubernetes takes it: a DNS-1123 name with an optional DNS-subdomain prefix ("cpu", "nvidia.com/gpu"). */
const RESOURCE_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** A Kubernetes quantity: a decimal number with an optional binary (Ki..Ei), decimal (n, u, m, k, M..E) or exponent suffix. */
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;
/** Resource names per requests or limits: Kubernetes has a handful; more is a mistake. */
const MAX_RESOURCES = 16;

/** Requests and limits: known shapes of names and quantities, and no limit below its request where both are plain numbers. */
export function validateResources(resources: ModelResources, field = "resources"): void {
  for (const [kind, entries] of [
    ["requests", resources.requests],
    ["limits", resources.limits],
  ] as const) {
    const names = Object.keys(entries);
    if (names.length > MAX_RESOURCES) throw invalidArgument(`${field}.${kind} has ${names.length} entries; the limit is ${MAX_RESOURCES}`);
    for (const [name, quantity] of Object.entries(entries)) {
      if (name.length > 253 || !RESOURCE_NAME.test(name)) {
        throw invalidArgument(`${field}.${kind} names "${name.slice(0, 80)}", which is not a resource name (such as cpu, memory or nvidia.com/gpu)`);
      }
      if (quantity.length > 64 || !QUANTITY.test(quantity)) {
        throw invalidArgument(`${field}.${kind}["${name}"] is "${quantity.slice(0, 80)}", which is not a Kubernetes quantity (such as 500m, 2, 256Mi or 1Gi)`);
      }
    }
  }
  for (const [name, limit] of Object.entries(resources.limits)) {
    const request = resources.requests[name];
    if (request === undefined) continue;
    const [r, l] = [quantityValue(request), quantityValue(limit)];
    if (r !== undefined && l !== undefined && l < r) {
      throw invalidArgument(`${field}.limits["${name}"] ${limit} is below its request ${request}: Kubernetes refuses such a pod`);
    }
  }
}

const SUFFIX: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** A quantity as a number, for comparing a limit with its request (validated already). */
function quantityValue(q: string): number | undefined {
  const m = /^([\d.]+)([eE][-+]?\d+|[A-Za-z]+)?$/.exec(q);
  if (m === null) return undefined;
  const base = Number(m[1]);
  const suffix = m[2];
  if (suffix === undefined) return base;
  if (/^[eE]/.test(suffix)) return base * 10 ** Number(suffix.slice(1));
  const factor = SUFFIX[suffix];
  return factor === undefined ? undefined : base * factor;
}

/** Batching knobs; `maxBatchSize` is the one the model will have (undefined: unchanged, not checked here). */
export function validateBatching(batching: BatchingConfig, maxBatchSize: number | undefined, field = "batching"): void {
  if (batching.maxWaitMicros !== undefined && batching.maxWaitMicros > LIMITS.maxBatchWaitMicros) {
    throw invalidArgument(`${field}.max_wait_micros is ${batching.maxWaitMicros}; the limit is ${LIMITS.maxBatchWaitMicros}`);
  }
  if (batching.maxInFlightPerReplica > LIMITS.maxInFlightPerReplica) {
    throw invalidArgument(`${field}.max_in_flight_per_replica is ${batching.maxInFlightPerReplica}; the limit is ${LIMITS.maxInFlightPerReplica}`);
  }
  if (batching.maxQueueLength > LIMITS.maxQueueLength) {
    throw invalidArgument(`${field}.max_queue_length is ${batching.maxQueueLength}; the limit is ${LIMITS.maxQueueLength}`);
  }
  if (batching.fixedSize && maxBatchSize === 0) throw invalidArgument(`${field}.fixed_size needs max_batch_size`);
}

/**
 * A replica set as the container-manager reports it: its replicas belong to
 * the set's model version (empty fields are filled in) and have unique ids.
 */
export function validateReplicaSet(set: ReplicaSet | undefined): asserts set is ReplicaSet {
  if (set === undefined) throw invalidArgument("replica_set is missing");
  validateName("model", set.modelName);
  validateVersion(set.modelVersion);
  if (set.replicas.length > LIMITS.maxReplicasPerSet) {
    throw invalidArgument(`replica_set has ${set.replicas.length} replicas; the limit is ${LIMITS.maxReplicasPerSet}`);
  }
  const ids = new Set<string>();
  set.replicas.forEach((r, i) => {
    const field = `replica_set.replicas[${i}]`;
    if (r.id === "") throw invalidArgument(`${field}.id is empty`);
    if (ids.has(r.id)) throw invalidArgument(`${field}.id "${r.id}" appears twice`);
    ids.add(r.id);
    if (r.modelName === "") r.modelName = set.modelName;
    if (r.modelVersion === "") r.modelVersion = set.modelVersion;
    if (r.modelName !== set.modelName || r.modelVersion !== set.modelVersion) {
      throw invalidArgument(`${field} is of ${r.modelName}:${r.modelVersion}, not of the set's ${set.modelName}:${set.modelVersion}`);
    }
    validateText(`${field}.message`, r.message, LIMITS.maxRuntimeStringBytes);
    validateText(`${field}.endpoint`, r.endpoint, 300);
  });
}

/** A selection policy as UpdateApplication/CreateApplication give it; the fields name the problem. */
export function validateSelectionPolicy(policy: SelectionPolicy, field = "policy"): void {
  const finite = (name: string, v: number, min: number, max: number) => {
    if (!Number.isFinite(v) || v < min || v > max) throw invalidArgument(`${field}.${name} is ${v}; it must be a number in [${min}, ${max}]`);
  };
  if (LossKind[policy.loss] === undefined) throw invalidArgument(`${field}.loss has unknown value ${policy.loss}`);
  finite("loss_scale", policy.lossScale, 0, Number.MAX_VALUE);
  const kind = policy.kind;
  switch (kind.case) {
    case undefined:
      throw invalidArgument(`${field} has no kind: give one of single, split, exp3, exp4, epsilon_greedy, thompson`);
    case "split": {
      const entries = Object.entries(kind.value.weights);
      if (entries.length === 0) throw invalidArgument(`${field}.split.weights is empty: give a weight per model (or "model:version")`);
      if (entries.length > LIMITS.maxSplitWeights)
        throw invalidArgument(`${field}.split.weights has ${entries.length} entries; the limit is ${LIMITS.maxSplitWeights}`);
      for (const [key, weight] of entries) {
        const [model, version, extra] = key.split(":");
        if (extra !== undefined) throw invalidArgument(`${field}.split.weights key "${key.slice(0, 80)}" must be "model" or "model:version"`);
        validateName(`${field}.split.weights key`, model ?? "");
        if (version !== undefined) validateVersion(version, `${field}.split.weights key "${key.slice(0, 80)}" version`);
        finite(`split.weights["${key}"]`, weight, 0, Number.MAX_VALUE);
      }
      if (entries.every(([, w]) => w === 0)) throw invalidArgument(`${field}.split.weights are all 0: at least one must be positive`);
      return;
    }
    case "exp3":
      finite("exp3.gamma", kind.value.gamma, 0, 1);
      return;
    case "exp4":
      finite("exp4.eta", kind.value.eta, 0, 100);
      return;
    case "epsilonGreedy":
      finite("epsilon_greedy.epsilon", kind.value.epsilon, 0, 1);
      return;
    case "single":
    case "thompson":
      return;
  }
}

/** A policy state key and, for updates, its JSON state. */
export function validatePolicyStateKey(application: string, uid: string): void {
  validateName("application", application);
  validateText("uid", uid, LIMITS.maxUidBytes);
}

export function validatePolicyState(state: Uint8Array): void {
  if (state.byteLength > LIMITS.maxPolicyStateBytes) throw invalidArgument(`state is ${state.byteLength} bytes; the limit is ${LIMITS.maxPolicyStateBytes}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(state));
  } catch (err) {
    throw invalidArgument(`state is not UTF-8 JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw invalidArgument("state must be a JSON object");
}
