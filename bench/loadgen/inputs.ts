/**
 * What the load generator sends: numeric inputs, either a fixed set cycled
 * (a repeating mix, for the prediction cache) or made unique per request (no
 * two equal, so a cache can never hit). REST bodies are prepared once where
 * possible so the generator spends its CPU on sending, not on JSON.
 */
export interface InputMix {
  readonly name: string;
  /** Distinct inputs in the mix; null when every request is unique. */
  readonly distinct: number | null;
  values(sequence: number): number[];
  /** The REST body `{"input": [...]}` of request `sequence`. */
  restBody(sequence: number): string;
}

/** Cycles through `inputs` in order: after the first round, every request repeats an earlier one. */
export function repeatingMix(name: string, inputs: number[][]): InputMix {
  if (inputs.length === 0) throw new Error("a repeating mix needs at least one input");
  const bodies = inputs.map((input) => JSON.stringify({ input }));
  return {
    name,
    distinct: inputs.length,
    values: (sequence) => inputs[sequence % inputs.length] as number[],
    restBody: (sequence) => bodies[sequence % bodies.length] as string,
  };
}

/**
 * `base` with its first value replaced by `base[0] + sequence * 1e-7`, so
 * requests differ while staying within the model's usual range.
 */
export function uniqueMix(name: string, base: number[]): InputMix {
  const first = base[0];
  if (first === undefined) throw new Error("a unique mix needs a non-empty base input");
  const tail = base.slice(1);
  const tailJson = tail.length === 0 ? "]}" : `,${tail.join(",")}]}`;
  const firstValue = (sequence: number) => first + sequence * 1e-7;
  return {
    name,
    distinct: null,
    values: (sequence) => [firstValue(sequence), ...tail],
    restBody: (sequence) => `{"input":[${firstValue(sequence)}${tailJson}`,
  };
}
