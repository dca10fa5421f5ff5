import { firstAnswer, type SelectionContext, type SelectionPolicy } from "./policy.js";
import { unitHash } from "./random.js";

/**
 * A weighted traffic split for A/B tests and canaries. With a uid the choice
 * is sticky: the same user lands on the same model while the weights stay.
 * Weights live in the configuration, replaced whole, so a change is atomic.
 */
export class SplitPolicy implements SelectionPolicy<Record<string, never>> {
  readonly kind = "split";
  constructor(
    private readonly weights: Readonly<Record<string, number>>,
    /** Salts the sticky hash, so two applications split their users independently. */
    private readonly salt = "",
  ) {}

  init() {
    return {};
  }

  select(_state: Record<string, never>, models: readonly string[], ctx: SelectionContext): string[] {
    const weighted = models.map((m) => Math.max(0, this.weights[m] ?? 0));
    const total = weighted.reduce((s, w) => s + w, 0);
    if (models.length === 0) return [];
    if (total === 0) return models.slice(0, 1);
    let x = (ctx.uid !== undefined && ctx.uid !== "" ? unitHash(`${this.salt}\u0000${ctx.uid}`) : ctx.random()) * total;
    for (const [i, w] of weighted.entries()) {
      x -= w;
      if (x < 0) return [models[i] as string];
    }
    return [models[models.length - 1] as string];
  }

  combine(_state: Record<string, never>, answers: ReadonlyMap<string, string>) {
    return firstAnswer(answers);
  }

  observe(state: Record<string, never>) {
    return state;
  }
}
