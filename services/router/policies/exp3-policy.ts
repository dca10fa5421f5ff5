import { firstAnswer, type Observation, type SelectionContext, type SelectionPolicy, softmax } from "./policy.js";
import { sampleIndex } from "./random.js";

export interface Exp3State {
  /** Log of each model's weight (logs, so long runs cannot overflow). */
  logWeights: Record<string, number>;
}

/**
 * Exp3 (Auer et al.), as in Clipper's paper: one model per query, drawn from
 * a mix of the weights and uniform exploration; the answered model's weight
 * grows with its importance-weighted reward (1 - loss).
 */
export class Exp3Policy implements SelectionPolicy<Exp3State> {
  readonly kind = "exp3";
  /** @param gamma exploration rate in (0, 1]. */
  constructor(private readonly gamma = 0.1) {}

  init(models: readonly string[]): Exp3State {
    return { logWeights: Object.fromEntries(models.map((m) => [m, 0])) };
  }

  probabilities(state: Exp3State, models: readonly string[]): number[] {
    const k = models.length;
    return softmax(models.map((m) => state.logWeights[m] ?? 0)).map((p) => (1 - this.gamma) * p + this.gamma / k);
  }

  select(state: Exp3State, models: readonly string[], ctx: SelectionContext): string[] {
    if (models.length === 0) return [];
    return [models[sampleIndex(this.probabilities(state, models), ctx.random)] as string];
  }

  combine(_state: Exp3State, answers: ReadonlyMap<string, string>) {
    return firstAnswer(answers);
  }

  observe(state: Exp3State, observation: Observation): Exp3State {
    const models = Object.keys(state.logWeights);
    for (const m of observation.outputs.keys()) if (!models.includes(m)) models.push(m);
    const probabilities = this.probabilities(state, models);
    const logWeights = { ...state.logWeights };
    for (const [model, output] of observation.outputs) {
      const p = probabilities[models.indexOf(model)] ?? 1;
      const reward = 1 - observation.loss(output);
      logWeights[model] = (logWeights[model] ?? 0) + (this.gamma * (reward / p)) / models.length;
    }
    return { logWeights };
  }
}
