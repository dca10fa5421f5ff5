import { create } from "@bufbuild/protobuf";
import { type Inputs, InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { invalidArgument } from "./errors.js";
import { wellFormed } from "./utf8.js";

/** Clipper's names for input types, as used in REST, the CLI and the Python SDK. */
const NAMES: Record<string, InputType> = {
  bytes: InputType.BYTES,
  ints: InputType.INTS,
  integers: InputType.INTS,
  floats: InputType.FLOATS,
  doubles: InputType.DOUBLES,
  strings: InputType.STRINGS,
  string: InputType.STRINGS,
};

export function parseInputType(name: string): InputType {
  const t = NAMES[name.toLowerCase()];
  if (t === undefined) throw invalidArgument(`unknown input type "${name}": expected one of bytes, ints, floats, doubles, strings`);
  return t;
}

export function inputTypeName(t: InputType): string {
  switch (t) {
    case InputType.BYTES:
      return "bytes";
    case InputType.INTS:
      return "ints";
    case InputType.FLOATS:
      return "floats";
    case InputType.DOUBLES:
      return "doubles";
    case InputType.STRINGS:
      return "strings";
    default:
      return "unspecified";
  }
}

const isNumeric = (t: InputType) => t === InputType.INTS || t === InputType.FLOATS || t === InputType.DOUBLES;

function numericValues(inputs: Inputs): ArrayLike<number> {
  switch (inputs.type) {
    case InputType.INTS:
      return inputs.ints;
    case InputType.FLOATS:
      return inputs.floats;
    default:
      return inputs.doubles;
  }
}

/** The number of inputs in a packed batch. */
export function inputCount(inputs: Inputs): number {
  if (isNumeric(inputs.type)) return inputs.lengths.length;
  return inputs.type === InputType.BYTES ? inputs.bytes.length : inputs.strings.length;
}

export interface InputLimits {
  maxBatch: number;
  /** Largest single input: elements for numeric types, bytes for bytes and strings. */
  maxInputSize: number;
}

/**
 * Checks a packed batch against the type it must have; the error names the
 * offending field. Returns the number of inputs.
 */
export function validateInputs(inputs: Inputs | undefined, expected: InputType, limits: InputLimits, field = "inputs"): number {
  if (inputs === undefined) throw invalidArgument(`${field} is missing`);
  if (inputs.type !== expected) {
    throw invalidArgument(`${field}.type is ${inputTypeName(inputs.type)} but the application expects ${inputTypeName(expected)}`);
  }
  const others: Array<[string, number]> = [
    ["ints", inputs.ints.length],
    ["floats", inputs.floats.length],
    ["doubles", inputs.doubles.length],
    ["bytes", inputs.bytes.length],
    ["strings", inputs.strings.length],
  ];
  const own = inputTypeName(expected);
  for (const [name, n] of others) {
    if (name !== own && n > 0) throw invalidArgument(`${field}.${name} is set but the input type is ${own}`);
  }
  const count = inputCount(inputs);
  if (count === 0) throw invalidArgument(`${field} is empty: send at least one input`);
  if (count > limits.maxBatch) throw invalidArgument(`${field} has ${count} inputs, more than the limit of ${limits.maxBatch}`);
  if (isNumeric(expected)) {
    let total = 0;
    for (const [i, len] of inputs.lengths.entries()) {
      if (len === 0) throw invalidArgument(`${field}.lengths[${i}] is 0: an input needs at least one value`);
      if (len > limits.maxInputSize) throw invalidArgument(`${field}.lengths[${i}] is ${len}, more than the limit of ${limits.maxInputSize}`);
      total += len;
    }
    const have = numericValues(inputs).length;
    if (total !== have) throw invalidArgument(`${field}.lengths add up to ${total} but ${own} holds ${have} values`);
  } else {
    const sizes = expected === InputType.BYTES ? inputs.bytes.map((b) => b.length) : inputs.strings.map((s) => Buffer.byteLength(s));
    for (const [i, size] of sizes.entries()) {
      if (size > limits.maxInputSize) throw invalidArgument(`${field}.${own}[${i}] is ${size} bytes, more than the limit of ${limits.maxInputSize}`);
    }
  }
  validateInputValues(inputs, field);
  return count;
}

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * What is wrong with one numeric value of an input of `type`, or undefined:
 * the one check of numbers every protocol makes (REST's parser, the gateway's
 * gRPC and Connect inputs, the router's validateInputs). Numbers must be
 * finite (NaN and ±Infinity are refused) and fit the type.
 */
export function numberProblem(type: InputType, x: unknown): string | undefined {
  if (typeof x !== "number") return "is not a number";
  if (Number.isNaN(x)) return "is NaN: numbers must be finite";
  if (!Number.isFinite(x)) return `is ${x > 0 ? "Infinity" : "-Infinity"}: numbers must be finite`;
  if (type === InputType.INTS && (!Number.isInteger(x) || x < INT32_MIN || x > INT32_MAX)) return "is not an integer in the int32 range";
  if (type === InputType.FLOATS && Math.abs(x) > FLOAT32_MAX) return "is out of the float32 range";
  return undefined;
}

/**
 * What is wrong with one string input, or undefined: it must be well-formed
 * Unicode, so that it has a UTF-8 encoding. Invalid UTF-8 in a JSON body is
 * decoded to lone surrogates (decodeUtf8KeepingErrors), as is a JSON escape
 * of one (`"\ud800"`): both are refused here rather than silently replaced
 * by U+FFFD on the way to the model. (Binary protobuf refuses invalid UTF-8
 * when it decodes the message.)
 */
export function stringProblem(s: string): string | undefined {
  return wellFormed(s) ? undefined : "is not valid UTF-8 (it holds invalid bytes or a lone surrogate escape)";
}

/**
 * Checks the values of a packed batch: finite numbers that fit its type,
 * strings that are valid UTF-8; the error names the value and its input.
 */
export function validateInputValues(inputs: Inputs, field = "inputs"): void {
  if (isNumeric(inputs.type)) {
    const values = numericValues(inputs);
    for (let k = 0; k < values.length; k++) {
      const problem = numberProblem(inputs.type, values[k]);
      if (problem !== undefined) throw invalidArgument(`${field}.${inputTypeName(inputs.type)}[${k}] ${problem}${positionOf(inputs.lengths, k)}`);
    }
  } else if (inputs.type === InputType.STRINGS) {
    for (const [i, s] of inputs.strings.entries()) {
      const problem = stringProblem(s);
      if (problem !== undefined) throw invalidArgument(`${field}.strings[${i}] ${problem}`);
    }
  }
}

/** " (value j of input i)" for the k-th packed value, when the lengths say. */
function positionOf(lengths: readonly number[], k: number): string {
  let start = 0;
  for (const [i, length] of lengths.entries()) {
    if (k < start + length) return ` (value ${k - start} of input ${i})`;
    start += length;
  }
  return "";
}

/** The inputs at the given positions, as a new packed batch. */
export function selectInputs(inputs: Inputs, indices: readonly number[]): Inputs {
  return concatInputs(
    inputs.type,
    indices.map((i) => sliceOne(inputs, i)),
  );
}

/** Splits a packed batch into one batch per input. */
export function splitInputs(inputs: Inputs): Inputs[] {
  const n = inputCount(inputs);
  const out: Inputs[] = [];
  for (let i = 0; i < n; i++) out.push(sliceOne(inputs, i));
  return out;
}

/** Joins batches of one type into one packed batch. */
export function concatInputs(type: InputType, parts: readonly Inputs[]): Inputs {
  const out = create(InputsSchema, { type });
  for (const p of parts) {
    out.lengths.push(...p.lengths);
    out.ints.push(...p.ints);
    out.floats.push(...p.floats);
    out.doubles.push(...p.doubles);
    out.bytes.push(...p.bytes);
    out.strings.push(...p.strings);
  }
  return out;
}

function sliceOne(inputs: Inputs, index: number): Inputs {
  const out = create(InputsSchema, { type: inputs.type });
  switch (inputs.type) {
    case InputType.BYTES:
      out.bytes.push(inputs.bytes[index] ?? new Uint8Array());
      return out;
    case InputType.STRINGS:
      out.strings.push(inputs.strings[index] ?? "");
      return out;
    default: {
      let start = 0;
      for (let i = 0; i < index; i++) start += inputs.lengths[i] ?? 0;
      const len = inputs.lengths[index] ?? 0;
      out.lengths.push(len);
      if (inputs.type === InputType.INTS) out.ints.push(...inputs.ints.slice(start, start + len));
      else if (inputs.type === InputType.FLOATS) out.floats.push(...inputs.floats.slice(start, start + len));
      else out.doubles.push(...inputs.doubles.slice(start, start + len));
      return out;
    }
  }
}
