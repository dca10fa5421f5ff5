import { create, createFileRegistry, type DescFile, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { file_clipper_common_v1_data } from "../../gen/clipper/common/v1/data_pb.js";
import { file_clipper_model_v1_model_service, PredictStreamRequestSchema, PredictStreamResponseSchema } from "../../gen/clipper/model/v1/model_service_pb.js";
import { file_clipper_v1_container_manager_service } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { file_clipper_v1_management_service } from "../../gen/clipper/v1/management_service_pb.js";
import { file_clipper_v1_prediction_service } from "../../gen/clipper/v1/prediction_service_pb.js";
import { file_clipper_v1_query_service, QueryStreamRequestSchema, QueryStreamResponseSchema } from "../../gen/clipper/v1/query_service_pb.js";
import { file_clipper_v1_resources } from "../../gen/clipper/v1/resources_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import {
  file_inference_grpc_predict_v2,
  ModelInferRequestSchema,
  ModelInferResponseSchema,
  ModelMetadataResponseSchema,
} from "../../gen/inference/grpc_predict_v2_pb.js";
import { binaryCodec } from "./binary-codec.js";
import { messageInit as arbitraryInit } from "./testing/arbitrary-message.js";

const files: DescFile[] = [
  file_clipper_common_v1_data,
  file_clipper_model_v1_model_service,
  file_clipper_v1_container_manager_service,
  file_clipper_v1_management_service,
  file_clipper_v1_prediction_service,
  file_clipper_v1_query_service,
  file_clipper_v1_resources,
  file_grpc_health_v1_health,
  file_inference_grpc_predict_v2,
];

function messagesOf(file: DescFile): DescMessage[] {
  const all: DescMessage[] = [];
  const visit = (m: DescMessage) => {
    all.push(m);
    m.nestedMessages.forEach(visit);
  };
  file.messages.forEach(visit);
  return all;
}

const messages = files.flatMap(messagesOf);
const compiled = messages.filter((m) => binaryCodec(m).compiled);

// Besides the fuzz tests' strings: any code point, and lone surrogates (TextEncoder and Buffer both write U+FFFD).
const strings = fc.oneof(fc.string(), fc.string({ unit: "binary", maxLength: 8 }), fc.constantFrom("\ud800", "é", "a\udc00b", "0"));
const messageInit = (desc: DescMessage) => arbitraryInit(desc, { strings });

/** fromBinary's result or its failure, to compare outcomes. */
function outcome(decode: () => unknown): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: decode() };
  } catch {
    return { ok: false };
  }
}

describe("binaryCodec", () => {
  it("is compiled for the messages on the query path and for every message of ours and OIP's, maps with string keys included", () => {
    for (const schema of [QueryStreamRequestSchema, QueryStreamResponseSchema, PredictStreamRequestSchema, PredictStreamResponseSchema]) {
      expect(binaryCodec(schema).compiled, schema.typeName).toBe(true);
    }
    // OIP's requests and answers carry `parameters` maps of InferParameter messages.
    for (const schema of [ModelInferRequestSchema, ModelInferResponseSchema]) expect(binaryCodec(schema).compiled, schema.typeName).toBe(true);
    expect(messages.filter((m) => m.fields.some((f) => f.fieldKind === "map")).length).toBeGreaterThan(5);
    expect(compiled).toEqual(messages);
  });

  it("falls back to protobuf-es for a map whose keys are not strings", () => {
    const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
    const registry = createFileRegistry(
      create(FileDescriptorProtoSchema, {
        name: "int_keys.proto",
        package: "t",
        syntax: "proto3",
        messageType: [
          {
            name: "M",
            field: [{ name: "m", jsonName: "m", number: 1, label: REPEATED, type: FieldDescriptorProto_Type.MESSAGE, typeName: ".t.M.MEntry" }],
            nestedType: [
              {
                name: "MEntry",
                options: { mapEntry: true },
                field: [
                  { name: "key", jsonName: "key", number: 1, label: OPTIONAL, type: FieldDescriptorProto_Type.INT32 },
                  { name: "value", jsonName: "value", number: 2, label: OPTIONAL, type: FieldDescriptorProto_Type.STRING },
                ],
              },
            ],
          },
        ],
      }),
      () => undefined,
    );
    const desc = registry.getMessage("t.M") as DescMessage;
    const codec = binaryCodec(desc);
    expect(codec.compiled).toBe(false);
    const bytes = codec.encode({ m: { 7: "seven" } } as never);
    expect(codec.decode(bytes)).toStrictEqual(fromBinary(desc, bytes));
    expect((codec.decode(bytes) as unknown as { m: Record<string, string> }).m).toEqual({ 7: "seven" });
  });

  it("writes a map's entries with their key and value even when zero, and reads the last of a repeated key", () => {
    const codec = binaryCodec(ModelInferRequestSchema);
    const init = { modelName: "m", parameters: { a: { parameterChoice: { case: "int64Param" as const, value: 0n } }, "": {} } };
    const expected = Buffer.from(toBinary(ModelInferRequestSchema, create(ModelInferRequestSchema, init)));
    expect(codec.encode(init)).toEqual(expected);
    // Two entries of key "k": the second wins, in both codecs.
    // Field 4 (parameters), an entry of 7 bytes: key "k" (field 1), value (field 2) an InferParameter of int64_param (its field 2).
    const entry = (value: number) => [0x22, 7, 0x0a, 1, 0x6b, 0x12, 2, 0x10, value];
    const twice = Buffer.from([...entry(1), ...entry(2)]);
    expect(codec.decode(twice)).toStrictEqual(fromBinary(ModelInferRequestSchema, twice));
    expect(codec.decode(twice).parameters.k?.parameterChoice).toEqual({ case: "int64Param", value: 2n });
  });

  it("writes an init shape's own __proto__ map key where protobuf-es does: dropped with message values, kept with strings", () => {
    const own = <V>(value: V) => Object.defineProperty({}, "__proto__", { value, enumerable: true, writable: true, configurable: true }) as Record<string, V>;
    const messages = { modelName: "m", parameters: own({ parameterChoice: { case: "boolParam" as const, value: true } }) };
    expect(binaryCodec(ModelInferRequestSchema).encode(messages)).toEqual(
      Buffer.from(toBinary(ModelInferRequestSchema, create(ModelInferRequestSchema, messages))),
    );
    const strings = { name: "m", properties: own("x") };
    const expected = Buffer.from(toBinary(ModelMetadataResponseSchema, create(ModelMetadataResponseSchema, strings)));
    expect(binaryCodec(ModelMetadataResponseSchema).encode(strings)).toEqual(expected);
  });

  it.each(compiled.map((m) => [m.typeName, m] as const))("writes %s byte for byte as protobuf-es and reads it back the same", (_name, desc) => {
    const codec = binaryCodec(desc);
    fc.assert(
      fc.property(messageInit(desc), (init) => {
        const message = create(desc, init);
        const expected = toBinary(desc, message);
        // Both a message and the init shape it was made from (what callers hand the gRPC serializer).
        expect(codec.encode(message)).toEqual(Buffer.from(expected));
        expect(codec.encode(init as never)).toEqual(Buffer.from(expected));
        const bytes = Buffer.from(expected);
        expect(codec.decode(bytes)).toStrictEqual(fromBinary(desc, bytes));
      }),
      { numRuns: 60 },
    );
  });

  it("reads foreign, truncated and random bytes as protobuf-es does, or fails where it fails", () => {
    const pairs = fc.tuple(fc.constantFrom(...compiled), fc.constantFrom(...compiled));
    fc.assert(
      fc.property(
        pairs.chain(([written, read]) =>
          fc.tuple(
            fc.constant(read),
            messageInit(written).map((init) => Buffer.from(toBinary(written, create(written, init)))),
            fc.nat(),
          ),
        ),
        ([read, bytes, cut]) => {
          for (const b of [bytes, bytes.subarray(0, cut % (bytes.length + 1))]) {
            const expected = outcome(() => fromBinary(read, b));
            const actual = outcome(() => binaryCodec(read).decode(b));
            expect(actual.ok).toBe(expected.ok);
            if (actual.ok && expected.ok) {
              expect(actual.value).toStrictEqual(expected.value);
              // Unknown fields are kept and written back.
              expect(binaryCodec(read).encode(actual.value as never)).toEqual(Buffer.from(toBinary(read, expected.value as never)));
            }
          }
        },
      ),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...compiled), fc.uint8Array({ maxLength: 40 }), (read, raw) => {
        const b = Buffer.from(raw);
        const expected = outcome(() => fromBinary(read, b));
        const actual = outcome(() => binaryCodec(read).decode(b));
        expect(actual.ok).toBe(expected.ok);
        if (actual.ok && expected.ok) expect(actual.value).toStrictEqual(expected.value);
      }),
      { numRuns: 400 },
    );
  });

  it("refuses values protobuf-es refuses", () => {
    const codec = binaryCodec(QueryStreamRequestSchema);
    for (const timeoutMs of [-1, 1.5, 2 ** 32]) {
      const init = { queries: [{ callId: 1n, timeoutMs }] };
      expect(() => toBinary(QueryStreamRequestSchema, create(QueryStreamRequestSchema, init))).toThrow();
      expect(() => codec.encode(init)).toThrow(/invalid uint32/);
    }
  });
});
