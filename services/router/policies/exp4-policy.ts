import type { Combined, Observation, SelectionPolicy } from "./policy.js";

export interface Exp4State {
  logWeights: Record<string, number>;
}

/**
 * Exp4-style ensemble: every linked model is queried, and the answers that
 * arrive by the deadline are combined with learned weights. Numeric outputs
 * combine by weighted mean, anything else by weighted vote. Each answered
 * model's weight shrinks by exp(-eta * loss) on feedback.
 */
export class Exp4Policy implements SelectionPolicy<Exp4State> {
  readonly kind = "exp4";
  /**
   * @param eta learning rate (> 0).
   * @param vote always combine by weighted vote, even numeric outputs: for classifiers whose labels are numbers.
   */
  constructor(
    private readonly eta = 0.5,
    private readonly vote = false,
  ) {}

  init(models: readonly string[]): Exp4State {
    return { logWeights: Object.fromEntries(models.map((m) => [m, 0])) };
  }

  select(_state: Exp4State, models: readonly string[]): string[] {
    return [...models];
  }

  /** Each model's share of the total weight of `models`. */
  shares(state: Exp4State, models: readonly string[]): Map<string, number> {
    const logs = models.map((m) => state.logWeights[m] ?? 0);
    const max = Math.max(...logs);
    const weights = logs.map((l) => Math.exp(l - max));
    const total = weights.reduce((s, w) => s + w, 0);
    return new Map(models.map((m, i) => [m, (weights[i] ?? 0) / total]));
  }

  combine(state: Exp4State, answers: ReadonlyMap<string, string>, models: readonly string[]): Combined | undefined {
    if (answers.size === 0) return undefined;
    const shares = this.shares(state, models.length > 0 ? models : [...answers.keys()]);
    const answered = [...answers.entries()].map(([model, output]) => ({ model, output, share: shares.get(model) ?? 0 }));
    const presentWeight = answered.reduce((s, a) => s + a.share, 0);
    const numbers = answered.map((a) => Number(a.output.trim()));
    if (!this.vote && answered.every((a, i) => a.output.trim() !== "" && Number.isFinite(numbers[i]))) {
      const mean =
        presentWeight > 0
          ? answered.reduce((s, a, i) => s + a.share * (numbers[i] ?? 0), 0) / presentWeight
          : numbers.reduce((s, n) => s + n, 0) / numbers.length;
      return { output: String(mean), models: answered.map((a) => a.model), confidence: presentWeight };
    }
    const votes = new Map<string, number>();
    for (const a of answered) votes.set(a.output, (votes.get(a.output) ?? 0) + a.share);
    let best = answered[0]?.output ?? "";
    for (const [output, weight] of votes) if (weight > (votes.get(best) ?? 0)) best = output;
    return { output: best, models: answered.filter((a) => a.output === best).map((a) => a.model), confidence: votes.get(best) ?? 0 };
  }

  observe(state: Exp4State, observation: Observation): Exp4State {
    const logWeights = { ...state.logWeights };
    for (const [model, output] of observation.outputs) {
      logWeights[model] = (logWeights[model] ?? 0) - this.eta * observation.loss(output);
    }
    return { logWeights };
  }
}
