import { create, type DescField, type DescMessage, type Message, ScalarType } from "@bufbuild/protobuf";
import fc from "fast-check";

/** Names a request is likely to hit (configured in the fuzz tests) next to random ones. */
const KNOWN_STRINGS = ["fuzz-app", "fuzz-model", "1", "", "no-such-thing", "Bad_Name", "a".repeat(64)];

const fuzzString = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...KNOWN_STRINGS) },
  { weight: 4, arbitrary: fc.string({ maxLength: 24, unit: "grapheme" }) },
  { weight: 1, arbitrary: fc.string({ minLength: 200, maxLength: 5000 }) },
);

function scalar(type: ScalarType, strings: fc.Arbitrary<string>): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return strings;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
      return fc.double();
    case ScalarType.FLOAT:
      return fc.float();
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: -10n, max: 10_000_000n }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 10_000n }));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
    default:
      return fc.oneof(fc.integer({ min: -2, max: 10 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
  }
}

function fieldValue(field: DescField, depth: number, strings: fc.Arbitrary<string>): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar, strings);
    case "enum":
      // Known values and a few unknown ones.
      return fc.oneof(fc.constantFrom(...field.enum.values.map((v) => v.number)), fc.integer({ min: -1, max: 50 }));
    case "message":
      return messageInit(field.message, { strings, depth: depth + 1 });
    case "list":
      return fc.array(element(field.listKind, field, depth, strings, 6), { maxLength: depth > 2 ? 2 : 6 });
    case "map":
      return fc.dictionary(fc.string({ maxLength: 12 }), element(field.mapKind, field, depth, strings, 3), { maxKeys: 3 });
  }
}

/** An element of a list or a value of a map: a scalar, an enum number up to `maxEnum`, or a message. */
function element(kind: "scalar" | "enum" | "message", field: DescField, depth: number, strings: fc.Arbitrary<string>, maxEnum: number): fc.Arbitrary<unknown> {
  if (kind === "scalar") return scalar(field.scalar ?? ScalarType.INT32, strings);
  if (kind === "enum") return fc.integer({ min: 0, max: maxEnum });
  return field.message ? messageInit(field.message, { strings, depth: depth + 1 }) : fc.constant({});
}

export interface ArbitraryMessageOptions {
  /** Values of string fields (default: names the test system knows, random and oversized strings). */
  strings?: fc.Arbitrary<string>;
  depth?: number;
}

/**
 * Random init shapes of any schema (what `create` takes): every field maybe
 * set, one case of each oneof or none, nesting cut off below depth 4.
 */
export function messageInit(schema: DescMessage, options: ArbitraryMessageOptions = {}): fc.Arbitrary<Record<string, unknown>> {
  const strings = options.strings ?? fuzzString;
  const depth = options.depth ?? 0;
  if (depth > 4) return fc.constant({});
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of schema.members) {
    if (member.kind === "oneof") {
      parts[member.localName] = fc.oneof(
        fc.constant(undefined),
        ...member.fields.map((f) => fieldValue(f, depth, strings).map((value) => ({ case: f.localName, value }))),
      );
    } else {
      parts[member.localName] = fieldValue(member, depth, strings);
    }
  }
  return fc.record(parts, { requiredKeys: [] }).map((init) => Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined)));
}

/** Random messages of any schema, names known to the test system mixed with random and oversized strings. */
export function message<D extends DescMessage>(schema: D, options: ArbitraryMessageOptions = {}): fc.Arbitrary<Message> {
  return messageInit(schema, options).map((init) => create(schema, init as never));
}

/** Every field name a message can carry, in proto, JSON and plain-words spelling, nested ones too: what an error may name. */
export function fieldNames(schema: DescMessage, into = new Set<string>(), seen = new Set<string>()): Set<string> {
  if (seen.has(schema.typeName)) return into;
  seen.add(schema.typeName);
  for (const field of schema.fields) {
    into.add(field.name);
    into.add(field.localName);
    // "model name" for model_name: the field named in words.
    into.add(field.name.replaceAll("_", " "));
    if (field.message !== undefined) fieldNames(field.message, into, seen);
  }
  for (const oneof of schema.oneofs) into.add(oneof.name);
  return into;
}
