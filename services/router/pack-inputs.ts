import { create } from "@bufbuild/protobuf";
import { type Inputs, InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { inputCount } from "../shared/index.js";

/** One input of a request, by reference: nothing is copied until a batch is packed. */
export interface InputRef {
  readonly source: Inputs;
  readonly index: number;
  /** For numeric types: where its values start in the source's packed field. */
  readonly offset: number;
}

/**
 * Packs referenced inputs into one `Inputs` for a model call: `padTo` inputs,
 * the last one repeated when there are fewer refs (fixed-size batches). A
 * batch that is exactly one whole request, in order, is sent as it came.
 */
export function packInputs(refs: readonly InputRef[], padTo = refs.length): Inputs {
  const first = refs[0];
  if (first === undefined) throw new Error("packInputs needs at least one input");
  const source = first.source;
  if (padTo === refs.length && inputCount(source) === refs.length && refs.every((r, i) => r.source === source && r.index === i)) return source;
  const out = create(InputsSchema, { type: source.type });
  for (let i = 0; i < padTo; i++) append(out, refs[Math.min(i, refs.length - 1)] as InputRef);
  return out;
}

function append(out: Inputs, r: InputRef): void {
  switch (r.source.type) {
    case InputType.BYTES:
      out.bytes.push(r.source.bytes[r.index] as Uint8Array);
      return;
    case InputType.STRINGS:
      out.strings.push(r.source.strings[r.index] as string);
      return;
    default: {
      const len = r.source.lengths[r.index] as number;
      out.lengths.push(len);
      const from = numeric(r.source);
      const to = numeric(out);
      for (let k = r.offset, end = r.offset + len; k < end; k++) to.push(from[k] as number);
    }
  }
}

function numeric(inputs: Inputs): number[] {
  if (inputs.type === InputType.INTS) return inputs.ints;
  return inputs.type === InputType.FLOATS ? inputs.floats : inputs.doubles;
}

const utf8 = new TextEncoder();

/** The bytes that identify one input for the prediction cache (its values in their wire width). */
export function inputKeyBytes(r: InputRef): Uint8Array {
  const s = r.source;
  switch (s.type) {
    case InputType.BYTES:
      return s.bytes[r.index] as Uint8Array;
    case InputType.STRINGS:
      return utf8.encode(s.strings[r.index] as string);
    default: {
      const len = s.lengths[r.index] as number;
      const values = numeric(s);
      const typed = s.type === InputType.INTS ? new Int32Array(len) : s.type === InputType.FLOATS ? new Float32Array(len) : new Float64Array(len);
      for (let k = 0; k < len; k++) typed[k] = values[r.offset + k] as number;
      return new Uint8Array(typed.buffer);
    }
  }
}
