import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { QueryResultSchema } from "../../../gen/clipper/v1/query_service_pb.js";
import { InferTensorContentsSchema } from "../../../gen/inference/grpc_predict_v2_pb.js";
import { Code, ConnectError } from "../../shared/index.js";
import {
  checkedDatatype,
  declaredOutput,
  decodeJsonData,
  decodeRaw,
  decodeTypedContents,
  defaultTensor,
  elementCount,
  encodeRaw,
  inputDatatype,
  outputTensor,
  toClipperInputs,
} from "./tensors.js";

const F = 'input tensor "x"';

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    return (err as ConnectError).rawMessage;
  }
  throw new Error("expected a refusal");
}

const results = (...outputs: string[]) => outputs.map((output, i) => create(QueryResultSchema, { queryId: BigInt(i), output, default: i === 1 }));

describe("datatypes", () => {
  it("maps Clipper input types to the datatypes they accept, and refuses the others by name", () => {
    expect(inputDatatype(InputType.DOUBLES)).toBe("FP64");
    expect(inputDatatype(InputType.FLOATS)).toBe("FP32");
    expect(inputDatatype(InputType.INTS)).toBe("INT32");
    expect(inputDatatype(InputType.STRINGS)).toBe("BYTES");
    expect(checkedDatatype("INT64", InputType.INTS, "a", F)).toBe("INT64");
    expect(refusal(() => checkedDatatype("FP32", InputType.DOUBLES, "a", F))).toBe(
      'input tensor "x" has datatype FP32, but application "a" takes doubles: send FP64',
    );
    expect(refusal(() => checkedDatatype("FP128", InputType.DOUBLES, "a", F))).toMatch(
      /datatype "FP128", which is not an Open Inference Protocol datatype \(one of BOOL, /,
    );
  });
});

describe("shapes", () => {
  it("counts elements and refuses negative, fractional or oversized shapes", () => {
    expect(elementCount([2n, 3n], F, { maxElements: 100 })).toEqual({ shape: [2, 3], count: 6 });
    expect(refusal(() => elementCount([2, -1], F, { maxElements: 100 }))).toMatch(/shape\[1\] = -1: dimensions are non-negative integers/);
    expect(refusal(() => elementCount([], F, { maxElements: 100 }))).toMatch(/empty shape/);
    expect(refusal(() => elementCount([1000, 1000], F, { maxElements: 100 }))).toMatch(/more elements than the gateway accepts in one request \(100\)/);
  });
});

describe("raw tensors", () => {
  it("decodes little-endian numbers and length-prefixed BYTES, and refuses a size that disagrees with the shape", () => {
    const fp64 = Buffer.alloc(16);
    fp64.writeDoubleLE(1.5, 0);
    fp64.writeDoubleLE(-2, 8);
    expect(decodeRaw("FP64", 2, fp64, F)).toEqual({ kind: "numbers", values: [1.5, -2] });
    const int64 = Buffer.alloc(8);
    int64.writeBigInt64LE(-7n);
    expect(decodeRaw("INT64", 1, int64, F)).toEqual({ kind: "numbers", values: [-7] });
    expect(refusal(() => decodeRaw("FP32", 3, fp64, F))).toBe('input tensor "x": its raw data is 16 bytes but its shape holds 3 FP32 elements (12 bytes)');
    const bytes = Buffer.from([2, 0, 0, 0, 104, 105, 0, 0, 0, 0]);
    const decoded = decodeRaw("BYTES", 2, bytes, F);
    expect(decoded.kind === "bytes" && decoded.values.map((v) => Buffer.from(v as Uint8Array).toString())).toEqual(["hi", ""]);
    expect(refusal(() => decodeRaw("BYTES", 1, Buffer.from([9, 0, 0, 0, 1]), F))).toMatch(/declares 9 bytes but only 1 remain/);
  });
});

describe("JSON tensors", () => {
  it("flattens nested data in row-major order and checks element kinds and count", () => {
    expect(
      decodeJsonData(
        "FP64",
        4,
        [
          [1, 2],
          [3, 4],
        ],
        F,
      ),
    ).toEqual({ kind: "numbers", values: [1, 2, 3, 4] });
    expect(
      refusal(() =>
        decodeJsonData(
          "FP64",
          3,
          [
            [1, 2],
            [3, 4],
          ],
          F,
        ),
      ),
    ).toMatch(/more elements than its shape \(3\)/);
    expect(refusal(() => decodeJsonData("FP64", 2, [1, "2"], F))).toBe('input tensor "x": data[1] is not a number (FP64 elements are numbers)');
    expect(refusal(() => decodeJsonData("BYTES", 1, [7], F))).toMatch(/data\[0\] is not a string/);
    let deep: unknown = [1];
    for (let i = 0; i < 20; i++) deep = [deep];
    expect(refusal(() => decodeJsonData("FP64", 1, deep, F))).toMatch(/nested deeper than 8 levels/);
  });
});

describe("typed contents", () => {
  it("reads the field of the datatype and refuses data in another one", () => {
    const contents = create(InferTensorContentsSchema, { int64Contents: [1n, 2n] });
    expect(decodeTypedContents("INT64", 2, contents, F)).toEqual({ kind: "numbers", values: [1, 2] });
    expect(refusal(() => decodeTypedContents("FP64", 2, contents, F))).toBe(
      'input tensor "x" has datatype FP64 but its contents fill int64_contents: FP64 goes in fp64_contents',
    );
  });
});

describe("to Clipper inputs", () => {
  it("makes a [N, k] tensor N inputs of k values, and a [k] tensor one input", () => {
    const batch = toClipperInputs(
      { name: "x", datatype: "FP64", shape: [2, 3], values: { kind: "numbers", values: [1, 2, 3, 4, 5, 6] } },
      InputType.DOUBLES,
      "a",
      F,
    );
    expect(batch.lengths).toEqual([3, 3]);
    expect(batch.doubles).toEqual([1, 2, 3, 4, 5, 6]);
    const one = toClipperInputs({ name: "x", datatype: "INT32", shape: [3], values: { kind: "numbers", values: [1, 2, 3] } }, InputType.INTS, "a", F);
    expect(one.lengths).toEqual([3]);
    expect(one.ints).toEqual([1, 2, 3]);
  });

  it("refuses ints outside int32, non-finite numbers, empty inputs, and BYTES of more than one string per input", () => {
    expect(
      refusal(() =>
        toClipperInputs({ name: "x", datatype: "INT64", shape: [1, 2], values: { kind: "numbers", values: [1, 2 ** 40] } }, InputType.INTS, "a", F),
      ),
    ).toBe('input tensor "x": input 0 value 1 = 1099511627776 is not an integer in the int32 range');
    expect(
      refusal(() =>
        toClipperInputs({ name: "x", datatype: "FP64", shape: [2, 1], values: { kind: "numbers", values: [1, Number.NaN] } }, InputType.DOUBLES, "a", F),
      ),
    ).toMatch(/input 1 value 0 = NaN is NaN/);
    expect(
      refusal(() => toClipperInputs({ name: "x", datatype: "FP64", shape: [2, 0], values: { kind: "numbers", values: [] } }, InputType.DOUBLES, "a", F)),
    ).toMatch(/an input needs at least one value/);
    expect(
      refusal(() => toClipperInputs({ name: "x", datatype: "BYTES", shape: [1, 2], values: { kind: "bytes", values: ["a", "b"] } }, InputType.STRINGS, "a", F)),
    ).toMatch(/takes one string per input: send shape \[N\] or \[N, 1\]/);
  });

  it("takes BYTES as strings (valid UTF-8 only) or as byte strings", () => {
    const strings = toClipperInputs(
      { name: "x", datatype: "BYTES", shape: [2, 1], values: { kind: "bytes", values: ["é", Buffer.from("b")] } },
      InputType.STRINGS,
      "a",
      F,
    );
    expect(strings.strings).toEqual(["é", "b"]);
    expect(
      refusal(() =>
        toClipperInputs({ name: "x", datatype: "BYTES", shape: [1], values: { kind: "bytes", values: [Buffer.from([0xff])] } }, InputType.STRINGS, "a", F),
      ),
    ).toMatch(/element 0 is not valid UTF-8/);
    const bytes = toClipperInputs(
      { name: "x", datatype: "BYTES", shape: [1], values: { kind: "bytes", values: [Buffer.from([0xff])] } },
      InputType.BYTES,
      "a",
      F,
    );
    expect([...(bytes.bytes[0] ?? [])]).toEqual([0xff]);
  });
});

describe("outputs", () => {
  it("answers numbers as FP64 [N], equal-length number arrays as FP64 [N, k], anything else as BYTES [N]", () => {
    expect(outputTensor(results("1.5", "-1"))).toEqual({ name: "output", datatype: "FP64", shape: [2], values: [1.5, -1] });
    expect(outputTensor(results("[0.1, 0.9]", "[1, 0]"))).toEqual({ name: "output", datatype: "FP64", shape: [2, 2], values: [0.1, 0.9, 1, 0] });
    expect(outputTensor(results("[1]", "[1, 2]"))).toMatchObject({ datatype: "BYTES", shape: [2], values: ["[1]", "[1, 2]"] });
    expect(outputTensor(results("cat", '"dog"', '{"a":1}'))).toMatchObject({ datatype: "BYTES", values: ["cat", "dog", '{"a":1}'] });
    expect(defaultTensor(results("1", "2"))).toEqual({ name: "default", datatype: "BOOL", shape: [2], values: [false, true] });
  });

  it("declares the output from the application's default output", () => {
    expect(declaredOutput("-1.0")).toEqual({ datatype: "FP64", shape: [-1] });
    expect(declaredOutput("[0, 0, 0]")).toEqual({ datatype: "FP64", shape: [-1, 3] });
    expect(declaredOutput("none")).toEqual({ datatype: "BYTES", shape: [-1] });
  });

  it("encodes raw outputs as Triton reads them", () => {
    expect([...encodeRaw({ name: "default", datatype: "BOOL", shape: [2], values: [true, false] })]).toEqual([1, 0]);
    expect(Buffer.from(encodeRaw({ name: "output", datatype: "BYTES", shape: [1], values: ["hé"] }))).toEqual(Buffer.from([3, 0, 0, 0, 0x68, 0xc3, 0xa9]));
    const raw = Buffer.from(encodeRaw({ name: "output", datatype: "FP64", shape: [2], values: [0.5, 2] }));
    expect([raw.readDoubleLE(0), raw.readDoubleLE(8)]).toEqual([0.5, 2]);
  });
});
