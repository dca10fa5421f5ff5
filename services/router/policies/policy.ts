import type { Random } from "./random.js";

/** What a policy knows about one query. */
export interface SelectionContext {
  /** The user the query is for, when the caller names one. */
  uid?: string;
  random: Random;
}

/** The answer a policy makes of what its selected models said by the deadline. */
export interface Combined {
  output: string;
  /** The models whose answers went into the output. */
  models: string[];
  /** In [0, 1]: how much of the policy's weight stands behind the output. */
  confidence: number;
}

/** Feedback for one input: what each model answered for it, and the true label. */
export interface Observation {
  outputs: ReadonlyMap<string, string>;
  /** The loss of one output against the label, in [0, 1]. */
  loss: (output: string) => number;
}

/**
 * A model-selection policy: pure code over a state it does not own. The state
 * is plain JSON, so the router can persist it per application and per user
 * and merge it across routers. Models may be linked or unlinked at any time:
 * a policy treats a model missing from its state as new.
 */
export interface SelectionPolicy<S> {
  readonly kind: string;
  init(models: readonly string[]): S;
  /** The models to query for one prediction (at least one when `models` is not empty). */
  select(state: S, models: readonly string[], ctx: SelectionContext): string[];
  /** One output from the answers that arrived; undefined when none did. */
  combine(state: S, answers: ReadonlyMap<string, string>, models: readonly string[]): Combined | undefined;
  /** The state after learning from one observation; the input state is left as it was. */
  observe(state: S, observation: Observation): S;
}

/** The single answer of a policy that queries one model. */
export function firstAnswer(answers: ReadonlyMap<string, string>): Combined | undefined {
  for (const [model, output] of answers) return { output, models: [model], confidence: 1 };
  return undefined;
}

/** Probabilities proportional to exp(logWeights), computed without overflow. */
export function softmax(logWeights: readonly number[]): number[] {
  const max = Math.max(...logWeights);
  const exps = logWeights.map((w) => Math.exp(w - max));
  const total = exps.reduce((s, e) => s + e, 0);
  return exps.map((e) => e / total);
}
