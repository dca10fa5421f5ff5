/** The registry's configuration (as WatchConfig keeps it) in the console API's JSON shape. */
import { type Application, type Model, ReplicaState, type SelectionPolicy } from "../../gen/clipper/v1/resources_pb.js";
import { type ConfigView, inputTypeName } from "../shared/index.js";
import type { ApplicationJson, ConsoleState, ModelVersionJson, PolicyJson, ReplicaStateName } from "./console-api.js";

export function policyJson(policy: SelectionPolicy | undefined): PolicyJson {
  const kind = policy?.kind;
  switch (kind?.case) {
    case "split":
      return { kind: "split", weights: { ...kind.value.weights } };
    case "exp3":
      return { kind: "exp3", gamma: kind.value.gamma };
    case "exp4":
      return { kind: "exp4", eta: kind.value.eta };
    case "epsilonGreedy":
      return { kind: "epsilon_greedy", epsilon: kind.value.epsilon };
    case "thompson":
      return { kind: "thompson" };
    default:
      return { kind: "single" };
  }
}

const STATE_NAMES: Record<ReplicaState, ReplicaStateName> = {
  [ReplicaState.UNSPECIFIED]: "unknown",
  [ReplicaState.STARTING]: "starting",
  [ReplicaState.READY]: "ready",
  [ReplicaState.UNHEALTHY]: "unhealthy",
  [ReplicaState.FAILED]: "failed",
  [ReplicaState.STOPPING]: "stopping",
};

function applicationJson(app: Application): ApplicationJson {
  return {
    name: app.name,
    inputType: inputTypeName(app.inputType),
    defaultOutput: app.defaultOutput,
    sloMicros: Number(app.sloMicros),
    linkedModels: [...app.linkedModels],
    policy: policyJson(app.policy),
    cacheEnabled: app.cacheEnabled,
    description: app.description,
  };
}

function runtimeName(model: Model): string {
  const kind = model.runtime?.kind;
  switch (kind?.case) {
    case "pythonClosure":
      return `python closure (Python ${kind.value.pythonVersion || "?"})`;
    case "command":
      return `command ${kind.value.argv[0] ?? ""}`.trim();
    case "nodeModule":
      return "node module";
    case "javaClass":
      return "java class";
    case "rFunction":
      return "R function";
    default:
      return "unknown";
  }
}

export function consoleState(view: ConfigView, registryConnected: boolean): ConsoleState {
  const models: ModelVersionJson[] = [];
  for (const [key, model] of view.models) {
    const replicaSet = view.replicaSets.get(key);
    models.push({
      name: model.name,
      version: model.version,
      inputType: inputTypeName(model.inputType),
      runtime: runtimeName(model),
      current: view.currentVersions.get(model.name) === model.version,
      desiredReplicas: model.desiredReplicas,
      batching: {
        maxBatchSize: model.maxBatchSize,
        maxWaitMicros: model.batching?.maxWaitMicros ?? null,
        maxInFlightPerReplica: model.batching?.maxInFlightPerReplica ?? 0,
        maxQueueLength: model.batching?.maxQueueLength ?? 0,
        fixedSize: model.batching?.fixedSize ?? false,
      },
      createdAtMs: Number(model.createdAtMs),
      replicas: (replicaSet?.replicas ?? []).map((r) => ({
        id: r.id,
        endpoint: r.endpoint,
        state: STATE_NAMES[r.state] ?? "unknown",
        restarts: r.restarts,
        message: r.message,
        startedAtMs: Number(r.startedAtMs),
      })),
    });
  }
  models.sort((a, b) => a.name.localeCompare(b.name) || compareVersions(a.version, b.version));
  return {
    revision: view.revision.toString(),
    registryConnected,
    applications: [...view.applications.values()].map(applicationJson).sort((a, b) => a.name.localeCompare(b.name)),
    models,
  };
}

/** Numeric versions in number order, others as text. */
function compareVersions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  return Number.isFinite(na) && Number.isFinite(nb) ? na - nb : a.localeCompare(b);
}
