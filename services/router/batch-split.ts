import { create } from "@bufbuild/protobuf";
import { InputType, type Inputs, InputsSchema } from "../../gen/clipper/common/v1/data_pb.js";

/** A contiguous run of inputs of a batch: [start, end). */
export interface BatchSlice {
  start: number;
  end: number;
  inputs: Inputs;
}

/**
 * Cuts a packed batch of `count` inputs into consecutive slices of at most
 * `maxBatchSize` inputs (0: no limit). Linear in the batch size: numeric
 * values are cut by a running offset, not re-summed per input.
 */
export function splitBatch(inputs: Inputs, count: number, maxBatchSize: number): BatchSlice[] {
  if (maxBatchSize <= 0 || count <= maxBatchSize) return [{ start: 0, end: count, inputs }];
  const slices: BatchSlice[] = [];
  let valueOffset = 0;
  for (let start = 0; start < count; start += maxBatchSize) {
    const end = Math.min(count, start + maxBatchSize);
    const part = create(InputsSchema, { type: inputs.type });
    switch (inputs.type) {
      case InputType.BYTES:
        part.bytes = inputs.bytes.slice(start, end);
        break;
      case InputType.STRINGS:
        part.strings = inputs.strings.slice(start, end);
        break;
      default: {
        part.lengths = inputs.lengths.slice(start, end);
        const values = part.lengths.reduce((a, b) => a + b, 0);
        const from = valueOffset;
        valueOffset += values;
        if (inputs.type === InputType.INTS) part.ints = inputs.ints.slice(from, valueOffset);
        else if (inputs.type === InputType.FLOATS) part.floats = inputs.floats.slice(from, valueOffset);
        else part.doubles = inputs.doubles.slice(from, valueOffset);
      }
    }
    slices.push({ start, end, inputs: part });
  }
  return slices;
}
