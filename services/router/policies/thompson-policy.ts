import { firstAnswer, type Observation, type SelectionContext, type SelectionPolicy } from "./policy.js";
import { sampleBeta } from "./random.js";

export interface BetaCounts {
  successes: Record<string, number>;
  failures: Record<string, number>;
}

/**
 * Thompson sampling with Beta-Bernoulli posteriors, for binary rewards: a
 * loss below one half counts as a success. Each query draws from every
 * model's Beta(1 + successes, 1 + failures) and takes the largest draw.
 */
export class ThompsonPolicy implements SelectionPolicy<BetaCounts> {
  readonly kind = "thompson";

  init(): BetaCounts {
    return { successes: {}, failures: {} };
  }

  select(state: BetaCounts, models: readonly string[], ctx: SelectionContext): string[] {
    let best: string | undefined;
    let bestDraw = -1;
    for (const m of models) {
      const draw = sampleBeta(1 + (state.successes[m] ?? 0), 1 + (state.failures[m] ?? 0), ctx.random);
      if (draw > bestDraw) {
        bestDraw = draw;
        best = m;
      }
    }
    return best === undefined ? [] : [best];
  }

  combine(_state: BetaCounts, answers: ReadonlyMap<string, string>) {
    return firstAnswer(answers);
  }

  observe(state: BetaCounts, observation: Observation): BetaCounts {
    const successes = { ...state.successes };
    const failures = { ...state.failures };
    for (const [model, output] of observation.outputs) {
      if (observation.loss(output) < 0.5) successes[model] = (successes[model] ?? 0) + 1;
      else failures[model] = (failures[model] ?? 0) + 1;
    }
    return { successes, failures };
  }
}
