import { invalidArgument } from "./errors.js";
import { type Inputs, InputType } from "./gen/clipper/common/v1/data_pb.js";

/** Each input type's Clipper name (REST, the CLI, the Python SDK) and the packed field that carries it. */
const FIELDS = {
  [InputType.BYTES]: "bytes",
  [InputType.INTS]: "ints",
  [InputType.FLOATS]: "floats",
  [InputType.DOUBLES]: "doubles",
  [InputType.STRINGS]: "strings",
} as const satisfies Partial<Record<InputType, keyof Inputs>>;

type PackedField = (typeof FIELDS)[keyof typeof FIELDS];

const ALIASES: Record<string, InputType> = { integers: InputType.INTS, string: InputType.STRINGS };

/** The input type of a name such as "doubles" (as CLIPPER_INPUT_TYPE gives it); case does not matter. */
export function parseInputType(name: string): InputType {
  const lower = name.toLowerCase();
  const found = Object.entries(FIELDS).find(([, field]) => field === lower);
  const type = found !== undefined ? (Number(found[0]) as InputType) : ALIASES[lower];
  if (type === undefined) throw invalidArgument(`unknown input type "${name}": expected one of bytes, ints, floats, doubles, strings`);
  return type;
}

export function inputTypeName(type: InputType): string {
  return type in FIELDS ? FIELDS[type as keyof typeof FIELDS] : "unspecified";
}

const isNumeric = (type: InputType) => type === InputType.INTS || type === InputType.FLOATS || type === InputType.DOUBLES;

/** The number of inputs in a packed batch: one length each for numeric types, one entry each otherwise. */
export function inputCount(inputs: Inputs): number {
  if (isNumeric(inputs.type)) return inputs.lengths.length;
  return inputs.type === InputType.BYTES ? inputs.bytes.length : inputs.strings.length;
}

/**
 * Checks a batch before the model sees it: the type the model takes, no other
 * packed field set, at least one input and at most `maxBatch`, and numeric
 * lengths that account for every value. The error (INVALID_ARGUMENT) names the field.
 */
export function validateInputs(inputs: Inputs, expected: InputType, maxBatch: number): void {
  const own = inputTypeName(expected);
  if (inputs.type !== expected) throw invalidArgument(`inputs.type is ${inputTypeName(inputs.type)} but the application expects ${own}`);
  for (const field of Object.values(FIELDS) as PackedField[]) {
    if (field !== own && inputs[field].length > 0) throw invalidArgument(`inputs.${field} is set but the input type is ${own}`);
  }
  const count = inputCount(inputs);
  if (count === 0) throw invalidArgument("inputs is empty: send at least one input");
  if (count > maxBatch) throw invalidArgument(`inputs has ${count} inputs, more than the limit of ${maxBatch}`);
  if (!isNumeric(expected)) return;
  let total = 0;
  inputs.lengths.forEach((len, i) => {
    if (len === 0) throw invalidArgument(`inputs.lengths[${i}] is 0: an input needs at least one value`);
    total += len;
  });
  const values = inputs[own as PackedField].length;
  if (total !== values) throw invalidArgument(`inputs.lengths add up to ${total} but ${own} holds ${values} values`);
}
