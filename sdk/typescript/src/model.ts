import { type Inputs, InputType } from "./gen/clipper/common/v1/data_pb.js";
import { inputCount } from "./inputs.js";

/**
 * One input as a model sees it: a vector of numbers for ints, floats and
 * doubles, the raw bytes for bytes, the text for strings.
 */
export type ModelInput = number[] | Uint8Array | string;

/** A batch prediction function: one string output per input, in order. */
export type PredictFunction = (inputs: ModelInput[]) => string[] | Promise<string[]>;

/** What a model author gives the SDK: an object with `predict`, or the function itself. */
export type Model = { predict: PredictFunction } | PredictFunction;

/** Either output of one input: its value, or why that input failed. */
export type ModelOutcome = { value: string } | { error: string };

/** Unpacks a packed batch into one value per input. */
export function unpackInputs(inputs: Inputs): ModelInput[] {
  switch (inputs.type) {
    case InputType.BYTES:
      return inputs.bytes.slice();
    case InputType.STRINGS:
      return inputs.strings.slice();
    default: {
      const values = inputs.type === InputType.INTS ? inputs.ints : inputs.type === InputType.FLOATS ? inputs.floats : inputs.doubles;
      const out: number[][] = [];
      let start = 0;
      for (const len of inputs.lengths) {
        out.push(values.slice(start, start + len));
        start += len;
      }
      return out;
    }
  }
}

/**
 * Runs the model on a batch and turns every way it can go wrong into
 * per-input errors, so a faulty model never takes the server down.
 */
export async function runModel(model: Model, inputs: Inputs): Promise<ModelOutcome[]> {
  const batch = unpackInputs(inputs);
  const count = inputCount(inputs);
  const predict = typeof model === "function" ? model : model.predict.bind(model);
  let result: unknown;
  try {
    result = await predict(batch);
  } catch (err) {
    const message = `predict failed: ${err instanceof Error ? err.message : String(err)}`;
    return batch.map(() => ({ error: message }));
  }
  if (!Array.isArray(result)) {
    const message = `predict returned ${describe(result)}, not an array of ${count} strings`;
    return batch.map(() => ({ error: message }));
  }
  if (result.length !== count) {
    const message = `predict returned ${result.length} outputs for ${count} inputs`;
    return batch.map(() => ({ error: message }));
  }
  return result.map((output: unknown, i) =>
    typeof output === "string" ? { value: output } : { error: `predict output ${i} is ${describe(output)}, not a string` },
  );
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}
