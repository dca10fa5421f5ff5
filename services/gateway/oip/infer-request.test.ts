import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ModelInferRequestSchema } from "../../../gen/inference/grpc_predict_v2_pb.js";
import { Code, ConnectError } from "../../shared/index.js";
import { inferCallFromGrpc, inferCallFromHttp, requestParameters } from "./infer-request.js";

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

const json = (body: unknown) => Buffer.from(JSON.stringify(body));

describe("request parameters", () => {
  it("reads timeout in microseconds and priority, and refuses sequence batching and malformed values", () => {
    expect(requestParameters(new Map([["timeout", 2500n]]))).toEqual({ timeoutMs: 2.5, priority: 0, binaryDataOutput: false });
    expect(
      requestParameters(
        new Map<string, number | boolean>([
          ["priority", 3],
          ["binary_data_output", true],
        ]),
      ),
    ).toEqual({ timeoutMs: undefined, priority: 3, binaryDataOutput: true });
    expect(requestParameters(new Map([["timeout", 0]])).timeoutMs).toBeUndefined();
    expect(refusal(() => requestParameters(new Map([["sequence_id", 7]])))).toMatch(/parameter "sequence_id": sequence batching is not supported/);
    expect(refusal(() => requestParameters(new Map([["timeout", -1]])))).toMatch(/parameter "timeout" must be a non-negative integer/);
    expect(refusal(() => requestParameters(new Map([["priority", "high"]])))).toMatch(/parameter "priority" must be a non-negative integer/);
  });
});

describe("HTTP inference requests", () => {
  const tensor = { name: "x", datatype: "FP64", shape: [1, 2], data: [1, 2] };

  it("parses a JSON request with its requested outputs and parameters", () => {
    const call = inferCallFromHttp(
      "m",
      "2",
      json({ id: "r1", inputs: [tensor], outputs: [{ name: "output", parameters: { binary_data: true } }], parameters: { timeout: 1000 } }),
      undefined,
    );
    expect(call).toMatchObject({ model: "m", version: "2", id: "r1", outputs: [{ name: "output", binary: true }], timeoutMs: 1 });
    expect(call.tensor).toEqual({ name: "x", datatype: "FP64", shape: [1, 2], data: { kind: "json", data: [1, 2] } });
  });

  it("splits Triton's binary extension: the JSON header, then the tensor's bytes", () => {
    const header = json({ inputs: [{ name: "x", datatype: "FP64", shape: [1, 1], parameters: { binary_data_size: 8 } }] });
    const raw = Buffer.alloc(8);
    raw.writeDoubleLE(4.25);
    const call = inferCallFromHttp("m", "", Buffer.concat([header, raw]), String(header.length));
    expect(call.tensor.data.kind).toBe("raw");
    expect(call.tensor.data.kind === "raw" && Buffer.from(call.tensor.data.raw).readDoubleLE(0)).toBe(4.25);
    expect(refusal(() => inferCallFromHttp("m", "", Buffer.concat([header, raw, raw]), String(header.length)))).toMatch(
      /binary_data_size 8, but 16 bytes follow the JSON header/,
    );
    expect(refusal(() => inferCallFromHttp("m", "", header, String(header.length + 5)))).toMatch(
      /Inference-Header-Content-Length is "\d+": it must be an integer from 0/,
    );
  });

  it("refuses what a Clipper application cannot take, naming the problem", () => {
    expect(refusal(() => inferCallFromHttp("m", "", Buffer.from("{"), undefined))).toMatch(/not valid JSON/);
    expect(refusal(() => inferCallFromHttp("m", "", json({ inputs: [] }), undefined))).toBe(
      'the request has no input tensor: model "m" takes one, named "input"',
    );
    expect(refusal(() => inferCallFromHttp("m", "", json({ inputs: [tensor, { ...tensor, name: "y" }] }), undefined))).toMatch(/2 input tensors \("x", "y"\)/);
    expect(refusal(() => inferCallFromHttp("m", "", json({ inputs: [{ ...tensor, data: undefined }] }), undefined))).toMatch(/has no "data"/);
    expect(
      refusal(() => inferCallFromHttp("m", "", json({ inputs: [tensor], outputs: [{ name: "output", parameters: { classification: 2 } }] }), undefined)),
    ).toMatch(/classification extension is not supported/);
  });
});

describe("gRPC inference requests", () => {
  it("takes raw_input_contents or typed contents, not both, and the InferParameter arms", () => {
    const raw = create(ModelInferRequestSchema, {
      modelName: "m",
      inputs: [{ name: "x", datatype: "FP32", shape: [1n, 1n] }],
      rawInputContents: [new Uint8Array(4)],
      parameters: { timeout: { parameterChoice: { case: "uint64Param", value: 5000n } }, priority: { parameterChoice: { case: "int64Param", value: 1n } } },
    });
    expect(inferCallFromGrpc(raw)).toMatchObject({ model: "m", timeoutMs: 5, priority: 1, outputs: undefined, tensor: { data: { kind: "raw" } } });
    const typed = create(ModelInferRequestSchema, { modelName: "m", inputs: [{ name: "x", datatype: "FP64", shape: [1n], contents: { fp64Contents: [1] } }] });
    expect(inferCallFromGrpc(typed).tensor.data.kind).toBe("typed");
    const both = create(ModelInferRequestSchema, { ...typed, rawInputContents: [new Uint8Array(8)] });
    expect(refusal(() => inferCallFromGrpc(both))).toMatch(/has both contents and raw_input_contents/);
    const none = create(ModelInferRequestSchema, { modelName: "m", inputs: [{ name: "x", datatype: "FP64", shape: [1n] }] });
    expect(refusal(() => inferCallFromGrpc(none))).toMatch(/has no data: fill its contents or raw_input_contents/);
    const unset = create(ModelInferRequestSchema, {
      modelName: "m",
      inputs: [{ name: "x", datatype: "FP64", shape: [1n], contents: { fp64Contents: [1] } }],
      parameters: { timeout: {} },
    });
    expect(refusal(() => inferCallFromGrpc(unset))).toMatch(/parameter "timeout" has no value/);
  });
});
