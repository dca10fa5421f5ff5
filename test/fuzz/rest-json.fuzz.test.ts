// Property-based fuzzing of the gateway's REST parser: whatever the body, the
// answer is packed inputs of the application's type or a 400 naming the field.
import { toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Inputs, InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { parseFeedbackBody, parseJsonObject, parsePredictBody, RestError } from "../../services/gateway/index.js";
import { inputCount } from "../../services/shared/index.js";

const NUM_RUNS = 500;
const TYPES = [InputType.BYTES, InputType.INTS, InputType.FLOATS, InputType.DOUBLES, InputType.STRINGS];
const FIELDS = /\b(input|input_batch|version|uid|label|body|JSON)\b|input_batch\[\d+\]|input\[\d+\]/;

/** Numbers at and past the edges of int32, float32 and safe integers, and plain ones. */
const edgyNumber = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 3.4028234663852886e38, 3.5e38, Number.MAX_SAFE_INTEGER, 1e308, 0.5),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  any: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    edgyNumber,
    fc.string({ maxLength: 16 }),
    fc.base64String({ maxLength: 24 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(edgyNumber, { maxLength: 6 }),
    fc.array(tie("any"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("any"), { maxKeys: 3 }),
  ),
})).any;
/** Bodies shaped like Clipper requests, with every field possibly of the wrong kind. */
const body = fc.record(
  { input: value, input_batch: fc.oneof(fc.array(value, { maxLength: 5 }), value), version: value, uid: value, label: value },
  { requiredKeys: [] },
);

/** Runs the parser; anything thrown must be a 400 RestError whose cause names a field. */
function expectParsedOr400(parse: () => { inputs: Inputs }, type: InputType): void {
  let parsed: { inputs: Inputs };
  try {
    parsed = parse();
  } catch (err) {
    expect(err).toBeInstanceOf(RestError);
    const e = err as RestError;
    expect(e.status).toBe(400);
    expect(e.causeText).toMatch(FIELDS);
    return;
  }
  expect(parsed.inputs.type).toBe(type);
  expect(inputCount(parsed.inputs)).toBeGreaterThan(0);
  // What the parser accepted encodes: nothing out of range for its protobuf field.
  expect(() => toBinary(InputsSchema, parsed.inputs)).not.toThrow();
}

describe("REST parser fuzzing", () => {
  it("any text: a JSON object or a 400", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1))),
        ),
        (text) => {
          try {
            const obj = parseJsonObject(text);
            expect(typeof obj).toBe("object");
            expect(Array.isArray(obj)).toBe(false);
          } catch (err) {
            expect(err).toBeInstanceOf(RestError);
            expect((err as RestError).status).toBe(400);
          }
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it("any predict body, any input type, ragged or not: packed inputs or a 400 naming the field", () => {
    fc.assert(
      fc.property(body, fc.constantFrom(...TYPES), fc.boolean(), (b, type, allowRaggedBatch) => {
        expectParsedOr400(() => parsePredictBody(b, type, { allowRaggedBatch }), type);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("any feedback body: packed inputs and a label, or a 400 naming the field", () => {
    fc.assert(
      fc.property(body, fc.constantFrom(...TYPES), (b, type) => {
        expectParsedOr400(() => parseFeedbackBody(b, type), type);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
