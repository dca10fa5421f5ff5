import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InputType, InputsSchema } from "../../gen/clipper/common/v1/data_pb.js";
import { concatInputs } from "../shared/index.js";
import { splitBatch } from "./batch-split.js";

describe("splitBatch", () => {
  it("returns the batch itself when it fits", () => {
    const inputs = create(InputsSchema, { type: InputType.STRINGS, strings: ["a", "b"] });
    expect(splitBatch(inputs, 2, 0)[0]?.inputs).toBe(inputs);
    expect(splitBatch(inputs, 2, 2)[0]?.inputs).toBe(inputs);
  });

  it("cuts numeric batches into parts that concatenate back to the batch", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 7 }), (rows, max) => {
        const inputs = create(InputsSchema, { type: InputType.INTS, lengths: rows.map((r) => r.length), ints: rows.flat() });
        const slices = splitBatch(inputs, rows.length, max);
        expect(slices.every((s) => s.end - s.start <= max && s.inputs.lengths.length === s.end - s.start)).toBe(true);
        const joined = concatInputs(InputType.INTS, slices.map((s) => s.inputs));
        expect(joined.lengths).toEqual(inputs.lengths);
        expect(joined.ints).toEqual(inputs.ints);
      }),
    );
  });

  it("cuts bytes batches by entry", () => {
    const inputs = create(InputsSchema, { type: InputType.BYTES, bytes: [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])] });
    expect(splitBatch(inputs, 3, 2).map((s) => s.inputs.bytes.length)).toEqual([2, 1]);
  });
});
