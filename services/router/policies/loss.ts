/** How wrong an output is for a label, in [0, 1] for bandit rewards (reward = 1 - loss). */
export type LossKind = "zero_one" | "squared" | "absolute";

export interface LossOptions {
  kind: LossKind;
  /** For squared and absolute loss: errors at or beyond this scale count as loss 1. */
  scale: number;
}

/**
 * The loss of one output. Class labels compare as trimmed strings (and as
 * numbers when both parse, so "1" and "1.0" agree); regression losses need
 * numbers and count an unparseable output as the worst loss.
 */
export function loss(output: string, label: string, options: LossOptions): number {
  const a = Number(output.trim());
  const b = Number(label.trim());
  const numeric = output.trim() !== "" && label.trim() !== "" && Number.isFinite(a) && Number.isFinite(b);
  switch (options.kind) {
    case "zero_one":
      return (numeric ? a === b : output.trim() === label.trim()) ? 0 : 1;
    case "absolute":
      return numeric ? Math.min(1, Math.abs(a - b) / options.scale) : 1;
    case "squared":
      return numeric ? Math.min(1, ((a - b) / options.scale) ** 2) : 1;
  }
}
