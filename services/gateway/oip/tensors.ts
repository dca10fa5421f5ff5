import { create } from "@bufbuild/protobuf";
import { type Inputs, InputsSchema, InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import type { QueryResult } from "../../../gen/clipper/v1/query_service_pb.js";
import { inputTypeName, invalidArgument, numberProblem, stringProblem } from "../../shared/index.js";

/** The Open Inference Protocol's tensor datatypes. */
export const OIP_DATATYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
  "BF16",
] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];

/** The datatypes each Clipper input type accepts (INT64 values must still fit int32). */
const ACCEPTED: Record<InputType, readonly OipDatatype[]> = {
  [InputType.UNSPECIFIED]: [],
  [InputType.DOUBLES]: ["FP64"],
  [InputType.FLOATS]: ["FP32"],
  [InputType.INTS]: ["INT32", "INT64"],
  [InputType.STRINGS]: ["BYTES"],
  [InputType.BYTES]: ["BYTES"],
};

/** The datatype ModelMetadata declares for an application's input. */
export function inputDatatype(type: InputType): OipDatatype {
  return ACCEPTED[type][0] ?? "BYTES";
}

/** The datatypes this gateway decodes: those some Clipper input type accepts. */
export type DecodedDatatype = "FP64" | "FP32" | "INT32" | "INT64" | "BYTES";

const ELEMENT_BYTES: Record<Exclude<DecodedDatatype, "BYTES">, number> = { FP64: 8, FP32: 4, INT32: 4, INT64: 8 };

/** Tensor elements in row-major order: numbers, or for BYTES byte strings (raw or binary) or strings (JSON). */
export type TensorValues = { kind: "numbers"; values: ArrayLike<number> } | { kind: "bytes"; values: ReadonlyArray<Uint8Array | string> };

/** One input tensor of a request once its datatype, shape and data are checked against each other. */
export interface InputTensor {
  name: string;
  datatype: DecodedDatatype;
  shape: readonly number[];
  values: TensorValues;
}

/** Bounds on one tensor: `maxElements` keeps a declared shape from asking for more than a request body can carry. */
export interface TensorLimits {
  maxElements: number;
}

/** Longest shape accepted: deeper tensors are not what any Clipper model takes. */
const MAX_RANK = 8;

/** `field` names the tensor in errors, e.g. `input tensor "x"`. */
export function checkedDatatype(datatype: string, type: InputType, application: string, field: string): DecodedDatatype {
  if (!(OIP_DATATYPES as readonly string[]).includes(datatype)) {
    throw invalidArgument(`${field} has datatype "${datatype}", which is not an Open Inference Protocol datatype (one of ${OIP_DATATYPES.join(", ")})`);
  }
  const accepted = ACCEPTED[type];
  if (!accepted.includes(datatype as OipDatatype)) {
    throw invalidArgument(
      `${field} has datatype ${datatype}, but application "${application}" takes ${inputTypeName(type)}: send ${accepted.join(" or ") || "nothing (the application has no input type)"}`,
    );
  }
  return datatype as DecodedDatatype;
}

/** The number of elements a shape holds, checked: non-negative integer dimensions, a bounded rank and total. */
export function elementCount(shape: readonly (number | bigint)[], field: string, limits: TensorLimits): { shape: number[]; count: number } {
  if (shape.length === 0) throw invalidArgument(`${field} has an empty shape: give its dimensions, e.g. [N, k] for a batch of N inputs of k values`);
  if (shape.length > MAX_RANK) throw invalidArgument(`${field} has ${shape.length} dimensions; at most ${MAX_RANK} are accepted`);
  const dims: number[] = [];
  let count = 1;
  for (const [i, raw] of shape.entries()) {
    const d = typeof raw === "bigint" ? Number(raw) : raw;
    if (!Number.isSafeInteger(d) || d < 0) throw invalidArgument(`${field} has shape[${i}] = ${String(raw)}: dimensions are non-negative integers`);
    dims.push(d);
    count *= d;
    if (count > limits.maxElements) {
      throw invalidArgument(`${field} has shape [${shape.join(", ")}], more elements than the gateway accepts in one request (${limits.maxElements})`);
    }
  }
  return { shape: dims, count };
}

/** Decodes a tensor's raw bytes (gRPC raw_input_contents, or the HTTP binary tensor extension): little-endian, BYTES as 4-byte length prefixes. */
export function decodeRaw(datatype: DecodedDatatype, count: number, raw: Uint8Array, field: string): TensorValues {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (datatype === "BYTES") {
    const values: Uint8Array[] = [];
    let offset = 0;
    while (offset < raw.byteLength) {
      if (offset + 4 > raw.byteLength) throw invalidArgument(`${field}: its raw BYTES data ends inside an element's 4-byte length prefix (at byte ${offset})`);
      const length = view.getUint32(offset, true);
      offset += 4;
      if (offset + length > raw.byteLength) {
        throw invalidArgument(`${field}: its raw BYTES element ${values.length} declares ${length} bytes but only ${raw.byteLength - offset} remain`);
      }
      values.push(raw.subarray(offset, offset + length));
      offset += length;
    }
    if (values.length !== count) throw invalidArgument(`${field}: its raw data holds ${values.length} BYTES elements but its shape holds ${count}`);
    return { kind: "bytes", values };
  }
  const size = ELEMENT_BYTES[datatype];
  if (raw.byteLength !== count * size) {
    throw invalidArgument(`${field}: its raw data is ${raw.byteLength} bytes but its shape holds ${count} ${datatype} elements (${count * size} bytes)`);
  }
  const values = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const at = i * size;
    values[i] =
      datatype === "FP64"
        ? view.getFloat64(at, true)
        : datatype === "FP32"
          ? view.getFloat32(at, true)
          : datatype === "INT32"
            ? view.getInt32(at, true)
            : Number(view.getBigInt64(at, true));
  }
  return { kind: "numbers", values };
}

/** A JSON tensor's `data`: flat or nested arrays in row-major order; numbers, or strings for BYTES. */
export function decodeJsonData(datatype: DecodedDatatype, count: number, data: unknown, field: string): TensorValues {
  if (!Array.isArray(data)) throw invalidArgument(`${field}: "data" must be an array of the tensor's elements`);
  const flat: unknown[] = [];
  // Iterative flattening with a depth bound: a deeply nested body cannot exhaust the stack.
  const stack: Array<{ items: unknown[]; index: number }> = [{ items: data, index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as { items: unknown[]; index: number };
    if (top.index >= top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.index++];
    if (Array.isArray(item)) {
      if (stack.length > MAX_RANK) throw invalidArgument(`${field}: "data" is nested deeper than ${MAX_RANK} levels`);
      stack.push({ items: item, index: 0 });
    } else {
      if (flat.length >= count) throw invalidArgument(`${field}: "data" holds more elements than its shape (${count})`);
      flat.push(item);
    }
  }
  if (flat.length !== count) throw invalidArgument(`${field}: "data" holds ${flat.length} elements but its shape holds ${count}`);
  if (datatype === "BYTES") {
    for (const [i, v] of flat.entries())
      if (typeof v !== "string") throw invalidArgument(`${field}: data[${i}] is not a string (BYTES elements are strings in JSON)`);
    return { kind: "bytes", values: flat as string[] };
  }
  for (const [i, v] of flat.entries())
    if (typeof v !== "number") throw invalidArgument(`${field}: data[${i}] is not a number (${datatype} elements are numbers)`);
  return { kind: "numbers", values: flat as number[] };
}

/** The typed `contents` of a gRPC input tensor: the field of its datatype, and only that one. */
export interface TypedContents {
  fp64Contents: number[];
  fp32Contents: number[];
  intContents: number[];
  int64Contents: bigint[];
  bytesContents: Uint8Array[];
  boolContents: boolean[];
  uintContents: number[];
  uint64Contents: bigint[];
}

const CONTENTS_FIELD: Record<DecodedDatatype, keyof TypedContents> = {
  FP64: "fp64Contents",
  FP32: "fp32Contents",
  INT32: "intContents",
  INT64: "int64Contents",
  BYTES: "bytesContents",
};
const SNAKE: Record<keyof TypedContents, string> = {
  fp64Contents: "fp64_contents",
  fp32Contents: "fp32_contents",
  intContents: "int_contents",
  int64Contents: "int64_contents",
  bytesContents: "bytes_contents",
  boolContents: "bool_contents",
  uintContents: "uint_contents",
  uint64Contents: "uint64_contents",
};

export function decodeTypedContents(datatype: DecodedDatatype, count: number, contents: TypedContents, field: string): TensorValues {
  const own = CONTENTS_FIELD[datatype];
  for (const key of Object.keys(SNAKE) as Array<keyof TypedContents>) {
    if (key !== own && contents[key].length > 0) {
      throw invalidArgument(`${field} has datatype ${datatype} but its contents fill ${SNAKE[key]}: ${datatype} goes in ${SNAKE[own]}`);
    }
  }
  const values = contents[own];
  if (values.length !== count) throw invalidArgument(`${field}: contents.${SNAKE[own]} holds ${values.length} elements but its shape holds ${count}`);
  if (datatype === "BYTES") return { kind: "bytes", values: contents.bytesContents };
  if (datatype === "INT64") return { kind: "numbers", values: contents.int64Contents.map(Number) };
  return { kind: "numbers", values: values as number[] };
}

/**
 * A checked tensor as one packed batch of the application's type. Numeric:
 * shape [N, k, ...] is N inputs of k·... values, [k] one input of k values.
 * BYTES: shape [N] or [N, 1] is N inputs of one string (or byte string) each.
 */
export function toClipperInputs(tensor: InputTensor, type: InputType, application: string, field: string): Inputs {
  const { shape, values } = tensor;
  if (values.kind === "bytes") {
    const [n = 0, ...rest] = shape;
    if (rest.length > 1 || (rest.length === 1 && rest[0] !== 1)) {
      throw invalidArgument(
        `${field} has shape [${shape.join(", ")}], but application "${application}" takes one ${inputTypeName(type) === "strings" ? "string" : "byte string"} per input: send shape [N] or [N, 1]`,
      );
    }
    if (n === 0) throw invalidArgument(`${field} holds no inputs (shape [${shape.join(", ")}]): send at least one`);
    if (type === InputType.STRINGS) {
      const decoder = new TextDecoder("utf-8", { fatal: true });
      const strings = values.values.map((v, i) => {
        let s: string;
        try {
          s = typeof v === "string" ? v : decoder.decode(v);
        } catch {
          throw invalidArgument(`${field}: element ${i} is not valid UTF-8, and application "${application}" takes strings`);
        }
        const problem = stringProblem(s);
        if (problem !== undefined) throw invalidArgument(`${field}: element ${i} ${problem}`);
        return s;
      });
      return create(InputsSchema, { type, strings });
    }
    return create(InputsSchema, { type, bytes: values.values.map((v) => (typeof v === "string" ? Buffer.from(v, "utf8") : v)) });
  }
  const n = shape.length === 1 ? 1 : (shape[0] ?? 0);
  const total = values.values.length;
  if (n === 0) throw invalidArgument(`${field} holds no inputs (shape [${shape.join(", ")}]): send at least one`);
  const perInput = total / n;
  if (perInput === 0) throw invalidArgument(`${field} has shape [${shape.join(", ")}]: an input needs at least one value`);
  const packed = new Array<number>(total);
  for (let j = 0; j < total; j++) {
    const x = values.values[j] as number;
    const problem = numberProblem(type, x);
    if (problem !== undefined) {
      const i = Math.floor(j / perInput);
      throw invalidArgument(`${field}: input ${i} value ${j - i * perInput} = ${x} ${problem}`);
    }
    packed[j] = x;
  }
  const inputs = create(InputsSchema, { type, lengths: new Array<number>(n).fill(perInput) });
  if (type === InputType.INTS) inputs.ints = packed;
  else if (type === InputType.FLOATS) inputs.floats = packed;
  else inputs.doubles = packed;
  return inputs;
}

/** An output tensor built from the answers of one request. */
export type OutputTensor =
  | { name: string; datatype: "FP64"; shape: number[]; values: number[] }
  | { name: string; datatype: "BYTES"; shape: number[]; values: string[] }
  | { name: string; datatype: "BOOL"; shape: number[]; values: boolean[] };

/** The output tensors every application answers: its model's output, and which answers were the application's default. */
export const OUTPUT_NAME = "output";
export const DEFAULT_OUTPUT_NAME = "default";
export const OUTPUT_NAMES = [OUTPUT_NAME, DEFAULT_OUTPUT_NAME] as const;

/** How an output string reads as a tensor row: a number, k numbers, or text. */
type OutputShape = { kind: "number"; value: number } | { kind: "numbers"; values: number[] } | { kind: "text"; value: string };

function outputShape(output: string): OutputShape {
  let parsed: unknown;
  try {
    parsed = JSON.parse(output);
  } catch {
    return { kind: "text", value: output };
  }
  if (typeof parsed === "number") return { kind: "number", value: parsed };
  if (Array.isArray(parsed) && parsed.length > 0 && parsed.every((x) => typeof x === "number")) return { kind: "numbers", values: parsed as number[] };
  return { kind: "text", value: typeof parsed === "string" ? parsed : output };
}

/**
 * The "output" tensor: FP64 [N] when every answer is a JSON number, FP64 [N, k]
 * when every one is an array of k numbers, else BYTES [N] of the answers' text.
 */
export function outputTensor(results: readonly QueryResult[]): OutputTensor {
  const rows = results.map((r) => outputShape(r.output));
  const n = rows.length;
  if (rows.every((r) => r.kind === "number")) return { name: OUTPUT_NAME, datatype: "FP64", shape: [n], values: rows.map((r) => r.value) };
  const first = rows[0];
  if (first?.kind === "numbers" && rows.every((r) => r.kind === "numbers" && r.values.length === first.values.length)) {
    return { name: OUTPUT_NAME, datatype: "FP64", shape: [n, first.values.length], values: rows.flatMap((r) => (r.kind === "numbers" ? r.values : [])) };
  }
  return {
    name: OUTPUT_NAME,
    datatype: "BYTES",
    shape: [n],
    values: rows.map((r, i) => (r.kind === "text" ? r.value : (results[i]?.output ?? ""))),
  };
}

export function defaultTensor(results: readonly QueryResult[]): OutputTensor {
  return { name: DEFAULT_OUTPUT_NAME, datatype: "BOOL", shape: [results.length], values: results.map((r) => r.default) };
}

/**
 * What ModelMetadata declares for "output", read from the application's
 * default output (what its models answer looks like what it answers when they
 * cannot): a number gives FP64 [-1], k numbers FP64 [-1, k], text BYTES [-1].
 */
export function declaredOutput(defaultOutput: string): { datatype: "FP64" | "BYTES"; shape: number[] } {
  const shape = outputShape(defaultOutput);
  if (shape.kind === "number") return { datatype: "FP64", shape: [-1] };
  if (shape.kind === "numbers") return { datatype: "FP64", shape: [-1, shape.values.length] };
  return { datatype: "BYTES", shape: [-1] };
}

/** A tensor's raw bytes, as Triton's binary extension and gRPC raw_output_contents carry them. */
export function encodeRaw(tensor: OutputTensor): Uint8Array {
  switch (tensor.datatype) {
    case "FP64": {
      const out = Buffer.allocUnsafe(tensor.values.length * 8);
      for (const [i, x] of tensor.values.entries()) out.writeDoubleLE(x, i * 8);
      return out;
    }
    case "BOOL":
      return Uint8Array.from(tensor.values, (b) => (b ? 1 : 0));
    case "BYTES": {
      const parts = tensor.values.map((s) => Buffer.from(s, "utf8"));
      const out = Buffer.allocUnsafe(parts.reduce((sum, p) => sum + 4 + p.length, 0));
      let offset = 0;
      for (const p of parts) {
        out.writeUInt32LE(p.length, offset);
        p.copy(out, offset + 4);
        offset += 4 + p.length;
      }
      return out;
    }
  }
}
