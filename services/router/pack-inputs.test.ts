import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Inputs, InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { inputCount, splitInputs } from "../shared/index.js";
import { type InputRef, inputKeyBytes, packInputs } from "./pack-inputs.js";

/** References to every input of a request, in order, as the query processor makes them. */
function inputRefs(source: Inputs): InputRef[] {
  let offset = 0;
  return Array.from({ length: inputCount(source) }, (_, index) => {
    const ref = { source, index, offset };
    offset += source.lengths[index] ?? 0;
    return ref;
  });
}

describe("packInputs", () => {
  it("sends a whole request as it came, without copying", () => {
    const inputs = create(InputsSchema, { type: InputType.DOUBLES, lengths: [1, 2], doubles: [1, 2, 3] });
    expect(packInputs(inputRefs(inputs))).toBe(inputs);
  });

  it("packs inputs of several requests in the given order, for every type", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: -9, max: 9 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 5 }),
        (rows, rotate) => {
          const a = create(InputsSchema, { type: InputType.INTS, lengths: rows.map((r) => r.length), ints: rows.flat() });
          const b = create(InputsSchema, { type: InputType.INTS, lengths: [1], ints: [42] });
          const refs = [...inputRefs(a), ...inputRefs(b)];
          const order = refs.map((_, i) => refs[(i + rotate) % refs.length]!);
          const packed = packInputs(order);
          const expected = order.map((r) => (r.source === b ? [42] : rows[r.index]!));
          expect(packed.lengths).toEqual(expected.map((r) => r.length));
          expect(packed.ints).toEqual(expected.flat());
        },
      ),
    );
  });

  it("repeats the last input to fill a fixed-size batch", () => {
    const inputs = create(InputsSchema, { type: InputType.STRINGS, strings: ["a", "b"] });
    expect(packInputs(inputRefs(inputs), 4).strings).toEqual(["a", "b", "b", "b"]);
    const bytes = create(InputsSchema, { type: InputType.BYTES, bytes: [new Uint8Array([1])] });
    expect(packInputs(inputRefs(bytes), 2).bytes).toEqual([new Uint8Array([1]), new Uint8Array([1])]);
  });
});

describe("inputKeyBytes", () => {
  it("identifies inputs by value and width: equal values give equal bytes, different ones differ", () => {
    const d = create(InputsSchema, { type: InputType.DOUBLES, lengths: [2, 2, 1], doubles: [1, 2, 1, 2, 1] });
    const [x, y, z] = inputRefs(d).map(inputKeyBytes);
    expect(x).toEqual(y);
    expect(x).not.toEqual(z);
    expect(x?.length).toBe(16);
    const f = create(InputsSchema, { type: InputType.FLOATS, lengths: [2], floats: [1, 2] });
    expect(inputKeyBytes(inputRefs(f)[0]!).length).toBe(8);
    const s = create(InputsSchema, { type: InputType.STRINGS, strings: ["é"] });
    expect(inputKeyBytes(inputRefs(s)[0]!)).toEqual(new Uint8Array([0xc3, 0xa9]));
    const one = splitInputs(d)[2]!;
    expect(inputKeyBytes(inputRefs(one)[0]!)).toEqual(z);
  });
});
