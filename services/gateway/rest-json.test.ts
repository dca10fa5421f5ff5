import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { QueryResultSchema } from "../../gen/clipper/v1/query_service_pb.js";
import { parseFeedbackBody, parseJsonObject, parsePredictBody, RestError, restPrediction } from "./rest-json.js";

const strict = { allowRaggedBatch: false };

function restError(fn: () => unknown): RestError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RestError) return err;
    throw err;
  }
  throw new Error("expected a RestError");
}

describe("parseJsonObject", () => {
  it("rejects malformed JSON and non-objects with 400", () => {
    expect(restError(() => parseJsonObject("{nope")).status).toBe(400);
    expect(restError(() => parseJsonObject("{nope")).error).toBe("malformed JSON");
    expect(restError(() => parseJsonObject("[1]")).causeText).toBe("the body must be a JSON object");
  });
});

describe("parsePredictBody", () => {
  it("packs a single numeric input", () => {
    const r = parsePredictBody({ input: [1.5, 2] }, InputType.DOUBLES, strict);
    expect(r.batch).toBe(false);
    expect(r.inputs.lengths).toEqual([2]);
    expect(r.inputs.doubles).toEqual([1.5, 2]);
  });

  it("packs a batch with version and uid", () => {
    const r = parsePredictBody({ input_batch: [[1], [2]], version: "3", uid: 7 }, InputType.INTS, strict);
    expect(r).toMatchObject({ batch: true, version: "3", uid: "7" });
    expect(r.inputs.ints).toEqual([1, 2]);
  });

  it("packs strings and base64 bytes", () => {
    expect(parsePredictBody({ input: "hi" }, InputType.STRINGS, strict).inputs.strings).toEqual(["hi"]);
    const bytes = parsePredictBody({ input_batch: ["AQID", ""] }, InputType.BYTES, strict).inputs.bytes;
    expect(bytes.map((b) => [...b])).toEqual([[1, 2, 3], []]);
  });

  it.each([
    [{}, InputType.DOUBLES, 'input is missing: send "input" or "input_batch"'],
    [{ input: [1], input_batch: [[1]] }, InputType.DOUBLES, 'send either "input" or "input_batch", not both'],
    [{ input: [1, 2, "x"] }, InputType.DOUBLES, "input[2] is not a number"],
    [{ input: 3 }, InputType.DOUBLES, "input is not an array of numbers: the application expects doubles"],
    [{ input: [] }, InputType.FLOATS, "input is empty: an input needs at least one value"],
    [{ input: [1.5] }, InputType.INTS, "input[0] is not an integer in the int32 range"],
    [{ input: [2 ** 31] }, InputType.INTS, "input[0] is not an integer in the int32 range"],
    [{ input: [1e39] }, InputType.FLOATS, "input[0] is out of the float32 range"],
    [{ input: 5 }, InputType.STRINGS, "input is not a string: the application expects strings"],
    [{ input: "not base64!" }, InputType.BYTES, "input is not a base64 string: the application expects bytes"],
    [{ input_batch: [] }, InputType.DOUBLES, "input_batch is empty: send at least one input"],
    [{ input_batch: {} }, InputType.DOUBLES, "input_batch is not an array"],
    [
      { input_batch: [[1, 2], [3]] },
      InputType.DOUBLES,
      "input_batch[1] has 1 values but input_batch[0] has 2: all inputs of a batch must have the same length",
    ],
    [{ input_batch: [[1], [null]] }, InputType.DOUBLES, "input_batch[1][0] is not a number"],
    [{ input: [1], version: 2 }, InputType.DOUBLES, "version is not a string"],
    [{ input: [1], uid: {} }, InputType.DOUBLES, "uid is not a string or a number"],
  ])("rejects %j for type %s with 400: %s", (body, type, cause) => {
    const err = restError(() => parsePredictBody(body, type, strict));
    expect(err.status).toBe(400);
    expect(err.causeText).toBe(cause);
  });

  it("accepts a ragged batch when allowed", () => {
    const r = parsePredictBody({ input_batch: [[1, 2], [3]] }, InputType.DOUBLES, { allowRaggedBatch: true });
    expect(r.inputs.lengths).toEqual([2, 1]);
  });
});

describe("parseFeedbackBody", () => {
  it("keeps a string label and serialises any other label as JSON", () => {
    expect(parseFeedbackBody({ input: [1], label: "cat", uid: "u" }, InputType.DOUBLES)).toMatchObject({ label: "cat", uid: "u" });
    expect(parseFeedbackBody({ input: [1], label: 3 }, InputType.DOUBLES).label).toBe("3");
    expect(restError(() => parseFeedbackBody({ input: [1] }, InputType.DOUBLES)).causeText).toBe("label is missing");
  });
});

describe("restPrediction", () => {
  it("answers the output as JSON when it parses, the string otherwise, and the explanation only for defaults", () => {
    expect(restPrediction(create(QueryResultSchema, { queryId: 4n, output: "[1,2]" }))).toEqual({ query_id: 4, output: [1, 2], default: false });
    expect(restPrediction(create(QueryResultSchema, { queryId: 5n, output: "plain text", default: true, defaultExplanation: "why" }))).toEqual({
      query_id: 5,
      output: "plain text",
      default: true,
      default_explanation: "why",
    });
  });
});
