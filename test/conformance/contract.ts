import { create } from "@bufbuild/protobuf";
import { type Inputs, InputsSchema, InputType, type Output } from "../../gen/clipper/common/v1/data_pb.js";

// The conformance model: a small model with a known behaviour, shipped for every runtime
// (test/conformance/models/), so the kit can check every answer. Its contract is in
// test/conformance/README.md; this file is the kit's side of it.
//
// Each input is answered with a JSON object:
//   ints, floats, doubles  {"n": number of values, "sum": their sum}
//   strings                {"n": UTF-8 length in bytes, "echo": the string}
//   bytes                  {"n": length, "sum": sum of the bytes as unsigned values}
// Directives (a string, or bytes of that text; a numeric input [-999, code, ms]):
//   "!fail"        [-999, 1]      predict raises: every input of the batch answers an error
//   "!wrong-count" [-999, 2]      predict answers one output too few: every input an error
//   "!wrong-type"  [-999, 3]      predict answers a non-string for this input: that input alone an error
//   "!sleep:MS"    [-999, 4, MS]  predict sleeps MS ms (the longest in the batch) and answers {"slept": MS}
// CLIPPER_CONFORMANCE_LOAD_MS=N: loading takes N ms, between the lines "conformance-model: loading"
// and "conformance-model: loaded" on stderr.

export type Directive = { kind: "fail" } | { kind: "wrong-count" } | { kind: "wrong-type" } | { kind: "sleep"; ms: number };

/** One input as the kit builds it. */
export type Value = number[] | Uint8Array | string;

export const MAGIC = -999;
export const LOADING_LINE = "conformance-model: loading";
export const LOADED_LINE = "conformance-model: loaded";
export const LOAD_MS_VARIABLE = "CLIPPER_CONFORMANCE_LOAD_MS";

export const INPUT_TYPES = [InputType.DOUBLES, InputType.FLOATS, InputType.INTS, InputType.STRINGS, InputType.BYTES] as const;

const NAMES: Record<number, string> = {
  [InputType.BYTES]: "bytes",
  [InputType.INTS]: "ints",
  [InputType.FLOATS]: "floats",
  [InputType.DOUBLES]: "doubles",
  [InputType.STRINGS]: "strings",
};

export const typeName = (type: InputType): string => NAMES[type] ?? "unspecified";

export function parseType(name: string): InputType {
  const found = INPUT_TYPES.find((t) => NAMES[t] === name.toLowerCase());
  if (found === undefined) throw new Error(`unknown input type "${name}": expected doubles, floats, ints, strings or bytes`);
  return found;
}

const isNumeric = (type: InputType) => type === InputType.INTS || type === InputType.FLOATS || type === InputType.DOUBLES;

/** A directive as an input of the given type. */
export function directive(type: InputType, d: Directive): Value {
  if (isNumeric(type)) {
    const code = { fail: 1, "wrong-count": 2, "wrong-type": 3, sleep: 4 }[d.kind];
    return d.kind === "sleep" ? [MAGIC, code, d.ms] : [MAGIC, code];
  }
  const text = d.kind === "sleep" ? `!sleep:${d.ms}` : `!${d.kind}`;
  return type === InputType.STRINGS ? text : new TextEncoder().encode(text);
}

/** Packs values of one type into a batch, as the router does. */
export function pack(type: InputType, values: readonly Value[]): Inputs {
  switch (type) {
    case InputType.STRINGS:
      return create(InputsSchema, { type, strings: values as string[] });
    case InputType.BYTES:
      return create(InputsSchema, { type, bytes: values as Uint8Array[] });
    default: {
      const numbers = values as number[][];
      const flat = numbers.flat();
      const field = type === InputType.INTS ? "ints" : type === InputType.FLOATS ? "floats" : "doubles";
      return create(InputsSchema, { type, lengths: numbers.map((v) => v.length), [field]: flat });
    }
  }
}

/**
 * Deterministic inputs whose answers are exact in any language: numbers are multiples of 1/4 of
 * small magnitude (exact in float32, sums exact in any order), ints include the int32 extremes,
 * strings include non-ASCII text, quotes, a newline and a NUL, bytes include 0 and 255. No input
 * starts like a directive.
 */
export function sampleInputs(type: InputType, count: number, seed = 0, nulInStrings = true): Value[] {
  const out: Value[] = [];
  for (let i = 0; i < count; i++) {
    const k = i + seed * 1009;
    switch (type) {
      case InputType.DOUBLES:
      case InputType.FLOATS: {
        const len = (k % 7) + 1;
        out.push(Array.from({ length: len }, (_, j) => (((k * 31 + j * 7) % 97) - 48) / 4));
        break;
      }
      case InputType.INTS: {
        if (k % 11 === 3) out.push([2147483647, -2147483648, 1]);
        else out.push(Array.from({ length: (k % 5) + 1 }, (_, j) => ((k * 31 + j * 7) % 2001) - 1000));
        break;
      }
      case InputType.STRINGS: {
        // A runtime whose strings cannot hold NUL (R's) is checked with another control character there (--no-nul-strings).
        const samples = ["", "a", "héllo ✓ 🎉", 'line\nbreak "quoted" \\ back', nulInStrings ? "nul\u0000inside" : "tab\u0009inside", `#${k}`];
        out.push(samples[k % samples.length] + (k >= samples.length ? ` ${k}` : ""));
        break;
      }
      case InputType.BYTES: {
        if (k % 4 === 0) out.push(new Uint8Array([0, 255, 1, 254]));
        else if (k % 4 === 1) out.push(new Uint8Array(0));
        else out.push(Uint8Array.from({ length: (k % 50) + 1 }, (_, j) => (k * 13 + j * 29) % 256).map((b) => (b === 0x21 ? 0x22 : b)));
        break;
      }
    }
  }
  return out;
}

/** A few inputs of each shape the type allows, including a long one. */
export function typicalBatch(type: InputType, nulInStrings = true): Value[] {
  const values = sampleInputs(type, 12, 0, nulInStrings);
  switch (type) {
    case InputType.STRINGS:
      values.push("x".repeat(10_000));
      break;
    case InputType.BYTES:
      values.push(Uint8Array.from({ length: 10_000 }, (_, j) => (j % 255) + 1).map((b) => (b === 0x21 ? 0x20 : b)));
      break;
    default:
      values.push(Array.from({ length: 1000 }, (_, j) => (j % 9) - 4));
  }
  return values;
}

/** The answer the conformance model gives for a data input. */
export function expected(value: Value): { n: number; sum?: number; echo?: string } {
  if (typeof value === "string") return { n: new TextEncoder().encode(value).length, echo: value };
  if (value instanceof Uint8Array) return { n: value.length, sum: value.reduce((a, b) => a + b, 0) };
  return { n: value.length, sum: value.reduce((a, b) => a + b, 0) };
}

/** Why an output is not the conformance model's answer for `value`, or undefined when it is. */
export function mismatch(value: Value, output: Output | undefined): string | undefined {
  if (output === undefined) return "no output";
  if (output.result.case !== "value") return `an error: ${output.result.case === "error" ? output.result.value : "no result"}`;
  const want = expected(value);
  let got: unknown;
  try {
    got = JSON.parse(output.result.value);
  } catch {
    return `not JSON: ${short(output.result.value)}`;
  }
  const g = got as { n?: unknown; sum?: unknown; echo?: unknown };
  if (g.n !== want.n || g.sum !== want.sum || g.echo !== want.echo) return `${short(output.result.value)}, expected ${short(JSON.stringify(want))}`;
  return undefined;
}

/** The first output that is not the expected answer, described; undefined when all are. */
export function firstMismatch(values: readonly Value[], outputs: readonly Output[]): string | undefined {
  if (outputs.length !== values.length) return `${outputs.length} outputs for ${values.length} inputs`;
  for (let i = 0; i < values.length; i++) {
    const why = mismatch(values[i]!, outputs[i]);
    if (why !== undefined) return `output ${i}: ${why}`;
  }
  return undefined;
}

export function short(text: string, max = 120): string {
  const oneLine = JSON.stringify(text).slice(1, -1);
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max)}... (${text.length} characters)`;
}
