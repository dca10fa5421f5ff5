import { firstAnswer, type SelectionPolicy } from "./policy.js";

/** Clipper's default: every query goes to the first linked model. */
export class SinglePolicy implements SelectionPolicy<Record<string, never>> {
  readonly kind = "single";
  init() {
    return {};
  }
  select(_state: Record<string, never>, models: readonly string[]): string[] {
    return models.slice(0, 1);
  }
  combine(_state: Record<string, never>, answers: ReadonlyMap<string, string>) {
    return firstAnswer(answers);
  }
  observe(state: Record<string, never>) {
    return state;
  }
}
