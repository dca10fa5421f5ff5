import { firstAnswer, type Observation, type SelectionContext, type SelectionPolicy } from "./policy.js";

export interface RewardTotals {
  /** Sum of rewards (1 - loss) per model. */
  rewards: Record<string, number>;
  counts: Record<string, number>;
}

/** Epsilon-greedy: the model with the best mean reward, or a random one with probability epsilon. Untried models go first. */
export class EpsilonGreedyPolicy implements SelectionPolicy<RewardTotals> {
  readonly kind = "epsilon_greedy";
  constructor(private readonly epsilon = 0.1) {}

  init(): RewardTotals {
    return { rewards: {}, counts: {} };
  }

  select(state: RewardTotals, models: readonly string[], ctx: SelectionContext): string[] {
    if (models.length === 0) return [];
    if (ctx.random() < this.epsilon) return [models[Math.floor(ctx.random() * models.length)] as string];
    const untried = models.find((m) => (state.counts[m] ?? 0) === 0);
    if (untried !== undefined) return [untried];
    let best = models[0] as string;
    const mean = (m: string) => (state.rewards[m] ?? 0) / (state.counts[m] ?? 1);
    for (const m of models) if (mean(m) > mean(best)) best = m;
    return [best];
  }

  combine(_state: RewardTotals, answers: ReadonlyMap<string, string>) {
    return firstAnswer(answers);
  }

  observe(state: RewardTotals, observation: Observation): RewardTotals {
    return addRewards(state, observation);
  }
}

export function addRewards(state: RewardTotals, observation: Observation): RewardTotals {
  const rewards = { ...state.rewards };
  const counts = { ...state.counts };
  for (const [model, output] of observation.outputs) {
    rewards[model] = (rewards[model] ?? 0) + (1 - observation.loss(output));
    counts[model] = (counts[model] ?? 0) + 1;
  }
  return { rewards, counts };
}
