/**
 * What a selection policy's learned state (the registry's GetPolicyState, as
 * the router stores it: docs/policies.md) says about each linked model, as a
 * number in [0, 1] the page can draw over time. Pure.
 */
import type { PolicyJson } from "./console-api.js";

/** What the numbers of a kind mean, for the chart's title. */
export function policyMeasure(kind: PolicyJson["kind"]): string | undefined {
  switch (kind) {
    case "exp3":
      return "Selection probability (exp3)";
    case "exp4":
      return "Ensemble weight (exp4)";
    case "epsilon_greedy":
      return "Mean reward (ε-greedy)";
    case "thompson":
      return "Posterior mean reward (Thompson)";
    default:
      return undefined;
  }
}

const record = (v: unknown): Record<string, number> => {
  const out: Record<string, number> = {};
  if (typeof v !== "object" || v === null) return out;
  for (const [k, n] of Object.entries(v)) if (typeof n === "number" && Number.isFinite(n)) out[k] = n;
  return out;
};

function softmax(values: readonly number[]): number[] {
  const max = Math.max(...values);
  const exps = values.map((w) => Math.exp(w - max));
  const total = exps.reduce((s, e) => s + e, 0);
  return exps.map((e) => e / total);
}

/**
 * Each linked model's number under the policy, from its stored state (empty
 * text: nothing learned yet, the policy's starting point). Undefined for the
 * kinds that learn nothing (single, split) and for a state that is not JSON.
 */
export function policyWeights(policy: PolicyJson, models: readonly string[], stateText: string): Record<string, number> | undefined {
  if (policyMeasure(policy.kind) === undefined || models.length === 0) return undefined;
  let state: Record<string, unknown> = {};
  if (stateText !== "") {
    try {
      const parsed: unknown = JSON.parse(stateText);
      if (typeof parsed !== "object" || parsed === null) return undefined;
      state = parsed as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  const out: Record<string, number> = {};
  switch (policy.kind) {
    case "exp3":
    case "exp4": {
      const logWeights = record(state.logWeights);
      const shares = softmax(models.map((m) => logWeights[m] ?? 0));
      // Exp3 mixes in uniform exploration (gamma, 0.1 when unset), as the router draws.
      const gamma = policy.kind === "exp3" ? policy.gamma || 0.1 : 0;
      models.forEach((m, i) => {
        out[m] = (1 - gamma) * (shares[i] ?? 0) + gamma / models.length;
      });
      return out;
    }
    case "epsilon_greedy": {
      const rewards = record(state.rewards);
      const counts = record(state.counts);
      for (const m of models) {
        const n = counts[m] ?? 0;
        if (n > 0) out[m] = (rewards[m] ?? 0) / n;
      }
      return out;
    }
    case "thompson": {
      // The mean of Beta(1 + successes, 1 + failures).
      const successes = record(state.successes);
      const failures = record(state.failures);
      for (const m of models) out[m] = (1 + (successes[m] ?? 0)) / (2 + (successes[m] ?? 0) + (failures[m] ?? 0));
      return out;
    }
    default:
      return undefined;
  }
}
