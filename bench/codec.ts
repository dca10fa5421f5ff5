// The cost of writing and reading the QueryStream's messages, per query, with
// protobuf-es's reflective codec and with the compiled one every gRPC call uses
// (services/shared/binary-codec.ts): a message of 55 queries of 8 doubles each
// (a 64-client wave) and the answers to them.
//   node --import tsx bench/codec.ts
import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { QueryStreamRequestSchema, QueryStreamResponseSchema } from "../gen/clipper/v1/query_service_pb.js";
import { binaryCodec } from "../services/shared/index.js";

const QUERIES = 55;
const ROUNDS = 5000;

const request = create(QueryStreamRequestSchema, {
  queries: Array.from({ length: QUERIES }, (_, i) => ({
    callId: BigInt(i),
    request: { application: "noop", inputs: { type: InputType.DOUBLES, lengths: [8], doubles: [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, i] } },
    timeoutMs: 1000,
  })),
});
const response = create(QueryStreamResponseSchema, {
  answers: Array.from({ length: QUERIES }, (_, i) => ({
    callId: BigInt(i),
    results: [{ queryId: BigInt(i), output: "6.6", models: ["noop-py:1"], confidence: 1 }],
  })),
});

function microsPerQuery(fn: () => unknown): string {
  for (let i = 0; i < ROUNDS / 2; i++) fn();
  const start = performance.now();
  for (let i = 0; i < ROUNDS; i++) fn();
  return (((performance.now() - start) * 1000) / ROUNDS / QUERIES).toFixed(2);
}

function measure<D extends DescMessage>(name: string, schema: D, message: Parameters<typeof toBinary<D>>[1]): string[] {
  const codec = binaryCodec(schema);
  const bytes = Buffer.from(toBinary(schema, message));
  return [
    `| ${name} | write | ${microsPerQuery(() => toBinary(schema, message))} | ${microsPerQuery(() => codec.encode(message))} |`,
    `| ${name} | read | ${microsPerQuery(() => fromBinary(schema, bytes))} | ${microsPerQuery(() => codec.decode(bytes))} |`,
  ];
}

console.log(
  [
    "| message | | protobuf-es µs per query | compiled µs per query |",
    "|---|---|---|---|",
    ...measure("QueryStreamRequest", QueryStreamRequestSchema, request),
    ...measure("QueryStreamResponse", QueryStreamResponseSchema, response),
  ].join("\n"),
);
