import { create } from "@bufbuild/protobuf";
import { LossKind, type SelectionPolicy, SelectionPolicySchema } from "../gen/clipper/v1/resources_pb.js";

export const POLICY_KINDS = ["single", "split", "exp3", "exp4", "epsilon_greedy", "thompson"] as const;
const LOSSES: Record<string, LossKind> = { zero_one: LossKind.ZERO_ONE, squared: LossKind.SQUARED, absolute: LossKind.ABSOLUTE };

/** What `clipper app policy` was given, before it becomes a SelectionPolicy. */
export interface PolicyFlags {
  kind: string;
  /** "model=weight,model:version=weight" */
  weights?: string;
  gamma?: string;
  eta?: string;
  epsilon?: string;
  loss?: string;
  lossScale?: string;
}

/** Builds the policy or throws an Error naming the flag at fault (the registry checks ranges again). */
export function parsePolicy(flags: PolicyFlags): SelectionPolicy {
  const number = (name: string, raw: string | undefined): number => {
    if (raw === undefined) return 0;
    const v = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(v)) throw new Error(`--${name} must be a number, got "${raw}"`);
    return v;
  };
  const loss = flags.loss === undefined ? LossKind.UNSPECIFIED : LOSSES[flags.loss];
  if (loss === undefined) throw new Error(`--loss must be one of ${Object.keys(LOSSES).join(", ")}, got "${flags.loss}"`);
  const common = { loss, lossScale: number("loss-scale", flags.lossScale) };
  const onlyFor = (flag: string, value: string | undefined, kind: string) => {
    if (value !== undefined && flags.kind !== kind) throw new Error(`--${flag} applies to ${kind} only`);
  };
  onlyFor("weights", flags.weights, "split");
  onlyFor("gamma", flags.gamma, "exp3");
  onlyFor("eta", flags.eta, "exp4");
  onlyFor("epsilon", flags.epsilon, "epsilon_greedy");
  switch (flags.kind) {
    case "single":
      return create(SelectionPolicySchema, { ...common, kind: { case: "single", value: {} } });
    case "split":
      return create(SelectionPolicySchema, { ...common, kind: { case: "split", value: { weights: parseWeights(flags.weights) } } });
    case "exp3":
      return create(SelectionPolicySchema, { ...common, kind: { case: "exp3", value: { gamma: number("gamma", flags.gamma) } } });
    case "exp4":
      return create(SelectionPolicySchema, { ...common, kind: { case: "exp4", value: { eta: number("eta", flags.eta) } } });
    case "epsilon_greedy":
      return create(SelectionPolicySchema, { ...common, kind: { case: "epsilonGreedy", value: { epsilon: number("epsilon", flags.epsilon) } } });
    case "thompson":
      return create(SelectionPolicySchema, { ...common, kind: { case: "thompson", value: {} } });
    default:
      throw new Error(`policy must be one of ${POLICY_KINDS.join(", ")}, got "${flags.kind}"`);
  }
}

function parseWeights(raw: string | undefined): Record<string, number> {
  if (raw === undefined || raw.trim() === "") throw new Error('split needs --weights, e.g. "digits:1=0.9,digits:2=0.1"');
  const weights: Record<string, number> = {};
  for (const part of raw.split(",")) {
    const eq = part.lastIndexOf("=");
    const key = part.slice(0, eq).trim();
    const value = Number(part.slice(eq + 1));
    if (eq <= 0 || key === "" || part.slice(eq + 1).trim() === "" || !Number.isFinite(value)) {
      throw new Error(`--weights entry "${part}" must look like model=weight or model:version=weight`);
    }
    weights[key] = value;
  }
  return weights;
}

/** One line describing a policy, for the CLI's answer. */
export function describePolicy(policy: SelectionPolicy | undefined): string {
  const k = policy?.kind;
  const loss =
    policy === undefined || policy.loss === LossKind.UNSPECIFIED ? "zero_one" : (Object.entries(LOSSES).find(([, v]) => v === policy.loss)?.[0] ?? "zero_one");
  switch (k?.case) {
    case undefined:
    case "single":
      return "single";
    case "split":
      return `split ${Object.entries(k.value.weights)
        .map(([m, w]) => `${m}=${w}`)
        .join(",")}`;
    case "exp3":
      return `exp3 gamma ${k.value.gamma || 0.1}, loss ${loss}`;
    case "exp4":
      return `exp4 eta ${k.value.eta || 0.5}, loss ${loss}`;
    case "epsilonGreedy":
      return `epsilon_greedy epsilon ${k.value.epsilon}, loss ${loss}`;
    case "thompson":
      return `thompson, loss ${loss}`;
  }
}
