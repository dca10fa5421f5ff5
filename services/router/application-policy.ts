import { type Application, LossKind as LossKindProto, type SelectionPolicy as SelectionPolicyProto } from "../../gen/clipper/v1/resources_pb.js";
import { EpsilonGreedyPolicy } from "./policies/epsilon-greedy-policy.js";
import { Exp3Policy } from "./policies/exp3-policy.js";
import { Exp4Policy } from "./policies/exp4-policy.js";
import { type LossKind, type LossOptions, loss } from "./policies/loss.js";
import type { SelectionPolicy } from "./policies/policy.js";
import { SinglePolicy } from "./policies/single-policy.js";
import { SplitPolicy } from "./policies/split-policy.js";
import { ThompsonPolicy } from "./policies/thompson-policy.js";

/**
 * An application's selection policy, built from its configuration. Arms are
 * what the policy chooses between: linked model names (their current
 * version), or "model:version" entries of a split (a canary between versions
 * of one model).
 */
export interface ApplicationPolicy {
  readonly kind: string;
  readonly policy: SelectionPolicy<unknown>;
  /** False for single and split: nothing to fetch, nothing to learn. */
  readonly learns: boolean;
  readonly loss: LossOptions;
  readonly arms: readonly string[];
  /** The loss of an output against a label, in [0, 1]. */
  lossOf(output: string, label: string): number;
}

const built = new WeakMap<Application, ApplicationPolicy>();

/** The policy of an application; cached per Application object (config views are immutable, so a new object is the only sign of a change). */
export function applicationPolicy(app: Application): ApplicationPolicy {
  let p = built.get(app);
  if (p === undefined) {
    p = buildPolicy(app);
    built.set(app, p);
  }
  return p;
}

/** The model name and, for a "model:version" arm, the pinned version. */
export function parseArm(arm: string): { model: string; version: string | undefined } {
  const colon = arm.indexOf(":");
  return colon < 0 ? { model: arm, version: undefined } : { model: arm.slice(0, colon), version: arm.slice(colon + 1) };
}

function buildPolicy(app: Application): ApplicationPolicy {
  const config: SelectionPolicyProto | undefined = app.policy;
  const lossOptions: LossOptions = { kind: lossKind(config?.loss ?? LossKindProto.UNSPECIFIED), scale: config?.lossScale || 1 };
  const linked = app.linkedModels;
  const make = (policy: SelectionPolicy<unknown>, learns: boolean, arms: readonly string[] = linked): ApplicationPolicy => ({
    kind: policy.kind,
    policy,
    learns,
    loss: lossOptions,
    arms,
    lossOf: (output, label) => loss(output, label, lossOptions),
  });
  const kind = config?.kind;
  switch (kind?.case) {
    case undefined:
    case "single":
      return make(new SinglePolicy() as SelectionPolicy<unknown>, false);
    case "split": {
      // Only entries naming a linked model count; the rest wait for their link.
      const arms = Object.keys(kind.value.weights).filter((arm) => linked.includes(parseArm(arm).model));
      return make(new SplitPolicy(kind.value.weights, app.name) as SelectionPolicy<unknown>, false, arms.length > 0 ? arms : linked);
    }
    case "exp3":
      return make(new Exp3Policy(kind.value.gamma || 0.1) as SelectionPolicy<unknown>, true);
    case "exp4":
      // Classification (0/1 loss) votes even when the labels are numbers; regression losses average.
      return make(new Exp4Policy(kind.value.eta || 0.5, lossOptions.kind === "zero_one") as SelectionPolicy<unknown>, true);
    case "epsilonGreedy":
      return make(new EpsilonGreedyPolicy(kind.value.epsilon) as SelectionPolicy<unknown>, true);
    case "thompson":
      return make(new ThompsonPolicy() as SelectionPolicy<unknown>, true);
  }
}

function lossKind(kind: LossKindProto): LossKind {
  switch (kind) {
    case LossKindProto.SQUARED:
      return "squared";
    case LossKindProto.ABSOLUTE:
      return "absolute";
    default:
      return "zero_one";
  }
}

/** The record fields each learning policy's state must have (a policy change, or a hand-written state, may leave another shape). */
const STATE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  exp3: ["logWeights"],
  exp4: ["logWeights"],
  epsilon_greedy: ["rewards", "counts"],
  thompson: ["successes", "failures"],
};

/**
 * A stored state is `{policy: kind, state}`: the kind guards against reading
 * one policy's state with another after the policy changed. Anything else
 * (or a state of another kind) reads as undefined: start afresh.
 */
export function unwrapState(kind: string, stored: unknown): unknown {
  if (!isRecord(stored) || stored.policy !== kind || !isRecord(stored.state)) return undefined;
  const state = stored.state;
  for (const field of STATE_FIELDS[kind] ?? []) {
    const value = state[field];
    if (!isRecord(value) || Object.values(value).some((v) => typeof v !== "number" || !Number.isFinite(v))) return undefined;
  }
  return state;
}

export function wrapState(kind: string, state: unknown): { policy: string; state: unknown } {
  return { policy: kind, state };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
