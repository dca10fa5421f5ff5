import {
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  protoInt64,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Edition } from "@bufbuild/protobuf/wkt";

/**
 * The protobuf binary codec of one message type, as used on every gRPC call.
 *
 * protobuf-es's `toBinary`/`fromBinary` go through its reflection layer and a
 * writer that allocates per value (a Uint8Array and a DataView per double) and
 * per nested message (fork/join); on the query path that was 15-25% of the
 * gateway's and the router's CPU. This codec is compiled once per message type
 * from the same descriptors: it sizes a message first, then writes it into one
 * Buffer, and reads with protobuf-es's own BinaryReader into plain messages of
 * the shape protobuf-es creates. It covers proto3 messages made of scalars,
 * enums, messages, repeated fields, oneofs and maps with string keys (all the
 * maps of our protos and OIP's); a type with anything else (other map keys,
 * groups, well-known types, proto2 or editions files) keeps protobuf-es's codec.
 * Its output is byte-for-byte protobuf-es's, and what it reads is what
 * protobuf-es reads, or both fail (binary-codec.test.ts checks both for every
 * message type in gen/ on random messages and bytes).
 */
export interface BinaryCodec<D extends DescMessage> {
  encode(value: MessageInitShape<D>): Buffer;
  decode(bytes: Uint8Array): MessageShape<D>;
  /** True when this is the compiled codec, false when it falls back to protobuf-es. */
  readonly compiled: boolean;
}

const codecs = new WeakMap<DescMessage, BinaryCodec<DescMessage>>();

export function binaryCodec<D extends DescMessage>(desc: D): BinaryCodec<D> {
  let codec = codecs.get(desc);
  if (codec === undefined) {
    const plan = isCompilable(desc, new Set()) ? planOf(desc) : undefined;
    codec = plan ? compiledCodec(plan) : protobufEsCodec(desc);
    codecs.set(desc, codec);
  }
  return codec as unknown as BinaryCodec<D>;
}

function protobufEsCodec(desc: DescMessage): BinaryCodec<DescMessage> {
  return {
    compiled: false,
    encode: (value) => {
      const bytes = toBinary(desc, create(desc, value));
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    decode: (bytes) => fromBinary(desc, bytes),
  };
}

/** Whether every field of `desc`, and of the messages it holds, is one the compiled codec handles. */
function isCompilable(desc: DescMessage, visiting: Set<DescMessage>): boolean {
  if (visiting.has(desc)) return true;
  if (desc.file.edition !== Edition.EDITION_PROTO3 || desc.file.name.startsWith("google/protobuf/")) return false;
  visiting.add(desc);
  return desc.fields.every((f) => {
    if (f.fieldKind === "map") {
      if (f.mapKey !== ScalarType.STRING) return false;
      if (f.mapKind === "enum") return f.enum.open;
      return f.mapKind !== "message" || isCompilable(f.message, visiting);
    }
    if (f.fieldKind === "enum" && !f.enum.open) return false;
    if (f.fieldKind === "list" && f.listKind === "enum" && !f.enum.open) return false;
    if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) {
      return !f.delimitedEncoding && isCompilable(f.message, visiting);
    }
    return true;
  });
}

interface FieldPlan {
  number: number;
  name: string;
  /** The oneof's property when the field is a member of one. */
  oneof: string | undefined;
  kind: "scalar" | "message" | "list" | "map";
  /** Enums are int32 on the wire. */
  scalar: ScalarType;
  /** Only fields with implicit presence skip their zero value. */
  implicit: boolean;
  packed: boolean;
  utf8Validation: boolean;
  /** The tag as varint bytes, for the field's own wire type (packed lists: length-delimited). */
  tag: number[];
  /** List elements written one by one carry this tag. */
  elementTag: number[];
  message: MessagePlan | undefined;
  /** A map's value, as field 2 of each entry (its key is field 1, a string). */
  mapValue: FieldPlan | undefined;
  zero: () => unknown;
}

/** Field 1 of a map entry, a string: its tag. */
const MAP_KEY_TAG = (1 << 3) | WireType.LengthDelimited;

interface MessagePlan {
  typeName: string;
  fields: FieldPlan[];
  byNumber: Map<number, FieldPlan>;
  /** The same for field numbers below 32, looked up without hashing. */
  byLowNumber: (FieldPlan | undefined)[];
  /** Properties of a zero message, in protobuf-es's order: [name, zero value factory]. */
  zeroMembers: [string, () => unknown][];
}

const plans = new WeakMap<DescMessage, MessagePlan>();

function planOf(desc: DescMessage): MessagePlan {
  const known = plans.get(desc);
  if (known) return known;
  // byLowNumber starts without holes: V8 indexes a packed array faster.
  const plan: MessagePlan = {
    typeName: desc.typeName,
    fields: [],
    byNumber: new Map(),
    byLowNumber: Array.from({ length: 32 }, () => undefined),
    zeroMembers: [],
  };
  plans.set(desc, plan);
  for (const f of [...desc.fields].sort((a, b) => a.number - b.number)) {
    const field = fieldPlan(f);
    plan.fields.push(field);
    plan.byNumber.set(f.number, field);
    if (f.number < 32) plan.byLowNumber[f.number] = field;
  }
  for (const member of desc.members) {
    if (member.kind === "oneof") plan.zeroMembers.push([member.localName, () => ({ case: undefined })]);
    else if (member.presence === IMPLICIT) plan.zeroMembers.push([member.localName, (plan.byNumber.get(member.number) as FieldPlan).zero]);
  }
  return plan;
}

/** google.protobuf.FeatureSet.FieldPresence.IMPLICIT */
const IMPLICIT = 2;

function fieldPlan(f: DescField): FieldPlan {
  if (f.fieldKind === "map") return mapPlan(f);
  const scalar = f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar") ? f.scalar : ScalarType.INT32;
  const isMessage = messageOf(f) !== undefined;
  const packed = f.fieldKind === "list" && f.packed;
  const elementWireType = isMessage ? WireType.LengthDelimited : wireTypeOf(scalar);
  const kind = f.fieldKind === "list" ? "list" : isMessage ? "message" : "scalar";
  return {
    number: f.number,
    name: f.localName,
    oneof: f.oneof?.localName,
    kind,
    scalar,
    implicit: f.presence === IMPLICIT,
    packed,
    utf8Validation: f.utf8Validation,
    tag: varintBytes(((f.number << 3) | (packed ? WireType.LengthDelimited : elementWireType)) >>> 0),
    elementTag: varintBytes(((f.number << 3) | elementWireType) >>> 0),
    message: messageOf(f) === undefined ? undefined : planOf(messageOf(f) as DescMessage),
    mapValue: undefined,
    zero: kind === "list" ? () => [] : kind === "message" ? () => undefined : zeroOf(scalar),
  };
}

/** A map field: on the wire a repeated message of a key (1) and a value (2), in memory a plain object. */
function mapPlan(f: DescField & { fieldKind: "map" }): FieldPlan {
  const message = f.mapKind === "message" ? planOf(f.message) : undefined;
  const scalar = f.mapKind === "scalar" ? f.scalar : ScalarType.INT32;
  const wireType = message ? WireType.LengthDelimited : wireTypeOf(scalar);
  const value: FieldPlan = {
    number: 2,
    name: "value",
    oneof: undefined,
    kind: message ? "message" : "scalar",
    scalar,
    implicit: false,
    packed: false,
    utf8Validation: f.utf8Validation,
    tag: varintBytes((2 << 3) | wireType),
    elementTag: [],
    message,
    mapValue: undefined,
    zero: message ? () => undefined : zeroOf(scalar),
  };
  const tag = varintBytes(((f.number << 3) | WireType.LengthDelimited) >>> 0);
  return {
    number: f.number,
    name: f.localName,
    oneof: undefined,
    kind: "map",
    scalar: ScalarType.STRING,
    implicit: false,
    packed: false,
    utf8Validation: f.utf8Validation,
    tag,
    elementTag: tag,
    message: undefined,
    mapValue: value,
    zero: () => ({}),
  };
}

function messageOf(f: DescField): DescMessage | undefined {
  if (f.fieldKind === "message") return f.message;
  if (f.fieldKind === "list" && f.listKind === "message") return f.message;
  return undefined;
}

function zeroOf(scalar: ScalarType): () => unknown {
  switch (scalar) {
    case ScalarType.STRING:
      return () => "";
    case ScalarType.BOOL:
      return () => false;
    case ScalarType.BYTES:
      return () => new Uint8Array(0);
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return () => protoInt64.zero;
    default:
      return () => 0;
  }
}

function wireTypeOf(scalar: ScalarType): WireType {
  switch (scalar) {
    case ScalarType.BYTES:
    case ScalarType.STRING:
      return WireType.LengthDelimited;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.FLOAT:
      return WireType.Bit32;
    default:
      return WireType.Varint;
  }
}

function varintBytes(value: number): number[] {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value = value >>> 7;
  }
  bytes.push(value);
  return bytes;
}

function compiledCodec(plan: MessagePlan): BinaryCodec<DescMessage> {
  return {
    compiled: true,
    encode: (value) => {
      const sizes: number[] = [];
      const size = sizeOfMessage(plan, value as Message, sizes);
      const writer = new Writer(Buffer.allocUnsafe(size), sizes);
      writer.message(plan, value as Message);
      return writer.buf;
    },
    decode: (bytes) => {
      const reader = new Reader(bytes);
      return readMessage(plan, reader, bytes.byteLength, zeroMessage(plan), 0) as MessageShape<DescMessage>;
    },
  };
}

type Message = Record<string, unknown> & { $unknown?: { no: number; wireType: WireType; data: Uint8Array }[] };

/** The field's value in `msg` when it is set (protobuf-es's isSet, for messages and init shapes alike), else undefined. */
function setValue(field: FieldPlan, msg: Message): unknown {
  if (field.oneof !== undefined) {
    const oneof = msg[field.oneof] as { case?: string; value?: unknown } | undefined;
    return oneof?.case === field.name ? (oneof.value ?? undefined) : undefined;
  }
  const value = msg[field.name];
  if (value == null) return undefined;
  if (field.kind === "list") return (value as unknown[]).length > 0 ? value : undefined;
  if (field.kind === "map") return hasKeys(value as object) ? value : undefined;
  if (field.implicit && isZero(field.scalar, value)) return undefined;
  return value;
}

/**
 * A map's keys in protobuf-es's order (Object.keys). An init shape's own
 * "__proto__" key is dropped where create() copies the map into a new object
 * (message and bytes values: assigning that key sets the copy's prototype), so
 * protobuf-es writes it only for the other values.
 */
function entryKeys(map: object, value: FieldPlan): string[] {
  const keys = Object.keys(map);
  const copied = value.message !== undefined || value.scalar === ScalarType.BYTES;
  return copied && keys.includes("__proto__") ? keys.filter((k) => k !== "__proto__") : keys;
}

function hasKeys(map: object): boolean {
  for (const _ in map) return true;
  return false;
}

function isZero(scalar: ScalarType, value: unknown): boolean {
  switch (scalar) {
    case ScalarType.BOOL:
      return value === false;
    case ScalarType.STRING:
      return value === "";
    case ScalarType.BYTES:
      return value instanceof Uint8Array && value.byteLength === 0;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Object.is(value, 0);
    default:
      // Loose: 0, 0n and "0" (64-bit integers may be given as any of them).
      // biome-ignore lint/suspicious/noDoubleEquals: the loose comparison is the point
      return value == 0;
  }
}

// Sizing. Every length the writer needs (nested messages, packed lists,
// strings) is pushed to `sizes` in the order the writer consumes it: the
// sizing and writing passes walk the fields the same way.

function sizeOfMessage(plan: MessagePlan, msg: Message, sizes: number[]): number {
  let size = 0;
  for (const field of plan.fields) {
    const value = setValue(field, msg);
    if (value === undefined) continue;
    if (field.kind === "map") {
      size += sizeOfMap(field, value as Record<string, unknown>, sizes);
    } else if (field.kind === "list") {
      const list = value as unknown[];
      if (field.packed) {
        let payload = 0;
        for (const item of list) payload += sizeOfScalar(field.scalar, item, sizes);
        sizes.push(payload);
        size += field.tag.length + varintSize(payload) + payload;
      } else {
        for (const item of list) {
          if (item == null) continue;
          size += field.elementTag.length + (field.message ? sizeOfNested(field.message, item as Message, sizes) : sizeOfScalar(field.scalar, item, sizes));
        }
      }
    } else {
      size += field.tag.length + (field.message ? sizeOfNested(field.message, value as Message, sizes) : sizeOfScalar(field.scalar, value, sizes));
    }
  }
  for (const u of msg.$unknown ?? []) size += varintSize(((u.no << 3) | u.wireType) >>> 0) + u.data.byteLength;
  return size;
}

/** Every entry: its tag, its length (pushed to `sizes` ahead of its key's and value's), the key, the value; both always written, as protobuf-es does. */
function sizeOfMap(field: FieldPlan, map: Record<string, unknown>, sizes: number[]): number {
  const value = field.mapValue as FieldPlan;
  let size = 0;
  for (const key of entryKeys(map, value)) {
    const slot = sizes.length;
    sizes.push(0);
    const item = map[key];
    const entry =
      1 +
      sizeOfScalar(ScalarType.STRING, key, sizes) +
      value.tag.length +
      (value.message ? sizeOfNested(value.message, (item ?? {}) as Message, sizes) : sizeOfScalar(value.scalar, item, sizes));
    sizes[slot] = entry;
    size += field.tag.length + varintSize(entry) + entry;
  }
  return size;
}

function sizeOfNested(plan: MessagePlan, msg: Message, sizes: number[]): number {
  const slot = sizes.length;
  sizes.push(0);
  const size = sizeOfMessage(plan, msg, sizes);
  sizes[slot] = size;
  return varintSize(size) + size;
}

function sizeOfScalar(scalar: ScalarType, value: unknown, sizes: number[]): number {
  switch (scalar) {
    case ScalarType.STRING: {
      const length = utf8Length(value as string);
      sizes.push(length);
      return varintSize(length) + length;
    }
    case ScalarType.BYTES:
      return varintSize((value as Uint8Array).byteLength) + (value as Uint8Array).byteLength;
    case ScalarType.BOOL:
      return 1;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 8;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return 4;
    case ScalarType.UINT32:
      assertUInt32(value);
      return varintSize(value as number);
    case ScalarType.INT32:
      assertInt32(value);
      return (value as number) < 0 ? 10 : varintSize(value as number);
    case ScalarType.SINT32:
      assertInt32(value);
      return varintSize((((value as number) << 1) ^ ((value as number) >> 31)) >>> 0);
    case ScalarType.UINT64: {
      if (typeof value === "bigint" && value >= 0n && value <= 0xffff_ffffn) return varintSize(Number(value));
      const { lo, hi } = protoInt64.uEnc(value as bigint);
      return varint64Size(lo, hi);
    }
    case ScalarType.INT64: {
      const { lo, hi } = protoInt64.enc(value as bigint);
      return varint64Size(lo, hi);
    }
    case ScalarType.SINT64: {
      const { lo, hi } = zigzag64(value as bigint);
      return varint64Size(lo, hi);
    }
  }
}

function zigzag64(value: bigint | number | string): { lo: number; hi: number } {
  const tc = protoInt64.enc(value);
  const sign = tc.hi >> 31;
  return { lo: (tc.lo << 1) ^ sign, hi: ((tc.hi << 1) | (tc.lo >>> 31)) ^ sign };
}

function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x20_0000 ? 3 : value < 0x1000_0000 ? 4 : 5;
}

function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varintSize(lo >>> 0);
  let size = 5;
  let rest = hi >>> 3;
  while (rest !== 0) {
    size++;
    rest >>>= 7;
  }
  return size;
}

/** UTF-8 length as TextEncoder writes it (a lone surrogate becomes U+FFFD, 3 bytes). */
function utf8Length(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, "utf8");
  return n;
}

const INT32_MAX = 0x7fff_ffff;
const INT32_MIN = -0x8000_0000;
const UINT32_MAX = 0xffff_ffff;
const FLOAT32_MAX = 3.4028234663852886e38;

function assertInt32(value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value > INT32_MAX || value < INT32_MIN) throw new Error(`invalid int32: ${String(value)}`);
}

function assertUInt32(value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value > UINT32_MAX || value < 0) throw new Error(`invalid uint32: ${String(value)}`);
}

function assertFloat32(value: number): void {
  if (Number.isFinite(value) && (value > FLOAT32_MAX || value < -FLOAT32_MAX)) throw new Error(`invalid float32: ${value}`);
}

class Writer {
  pos = 0;
  private slot = 0;

  constructor(
    readonly buf: Buffer,
    private readonly sizes: number[],
  ) {}

  message(plan: MessagePlan, msg: Message): void {
    for (const field of plan.fields) {
      const value = setValue(field, msg);
      if (value === undefined) continue;
      if (field.kind === "map") {
        this.map(field, value as Record<string, unknown>);
      } else if (field.kind === "list") {
        const list = value as unknown[];
        if (field.packed) {
          this.raw(field.tag);
          this.varint(this.sizes[this.slot++] as number);
          for (const item of list) this.scalar(field.scalar, item);
        } else {
          for (const item of list) {
            if (item == null) continue;
            this.raw(field.elementTag);
            if (field.message) this.nested(field.message, item as Message);
            else this.scalar(field.scalar, item);
          }
        }
      } else {
        this.raw(field.tag);
        if (field.message) this.nested(field.message, value as Message);
        else this.scalar(field.scalar, value);
      }
    }
    for (const u of msg.$unknown ?? []) {
      this.varint(((u.no << 3) | u.wireType) >>> 0);
      this.buf.set(u.data, this.pos);
      this.pos += u.data.byteLength;
    }
  }

  private map(field: FieldPlan, map: Record<string, unknown>): void {
    const value = field.mapValue as FieldPlan;
    for (const key of entryKeys(map, value)) {
      const item = map[key];
      this.raw(field.tag);
      this.varint(this.sizes[this.slot++] as number);
      this.buf[this.pos++] = MAP_KEY_TAG;
      this.scalar(ScalarType.STRING, key);
      this.raw(value.tag);
      if (value.message) this.nested(value.message, (item ?? {}) as Message);
      else this.scalar(value.scalar, item);
    }
  }

  private nested(plan: MessagePlan, msg: Message): void {
    this.varint(this.sizes[this.slot++] as number);
    this.message(plan, msg);
  }

  private raw(bytes: number[]): void {
    for (const b of bytes) this.buf[this.pos++] = b;
  }

  private varint(value: number): void {
    while (value > 0x7f) {
      this.buf[this.pos++] = (value & 0x7f) | 0x80;
      value = value >>> 7;
    }
    this.buf[this.pos++] = value;
  }

  private varint64(lo: number, hi: number): void {
    if (hi === 0) {
      this.varint(lo >>> 0);
      return;
    }
    for (let i = 0; i < 28; i += 7) this.buf[this.pos++] = ((lo >>> i) & 0x7f) | 0x80;
    const hasMore = hi >>> 3 !== 0;
    this.buf[this.pos++] = (((lo >>> 28) & 0x0f) | ((hi & 0x07) << 4) | (hasMore ? 0x80 : 0)) & 0xff;
    if (!hasMore) return;
    for (let i = 3; i < 31; i += 7) {
      const shift = hi >>> i;
      const next = shift >>> 7 !== 0;
      this.buf[this.pos++] = ((next ? shift | 0x80 : shift) & 0xff) as number;
      if (!next) return;
    }
    this.buf[this.pos++] = (hi >>> 31) & 0x01;
  }

  private scalar(scalar: ScalarType, value: unknown): void {
    const buf = this.buf;
    switch (scalar) {
      case ScalarType.STRING: {
        const s = value as string;
        const length = this.sizes[this.slot++] as number;
        this.varint(length);
        if (length === s.length) {
          for (let i = 0; i < length; i++) buf[this.pos + i] = s.charCodeAt(i);
        } else {
          buf.write(s, this.pos, length, "utf8");
        }
        this.pos += length;
        return;
      }
      case ScalarType.BYTES: {
        const bytes = value as Uint8Array;
        this.varint(bytes.byteLength);
        buf.set(bytes, this.pos);
        this.pos += bytes.byteLength;
        return;
      }
      case ScalarType.BOOL:
        buf[this.pos++] = value ? 1 : 0;
        return;
      case ScalarType.DOUBLE:
        this.pos = buf.writeDoubleLE(value as number, this.pos);
        return;
      case ScalarType.FLOAT:
        assertFloat32(value as number);
        this.pos = buf.writeFloatLE(value as number, this.pos);
        return;
      case ScalarType.FIXED32:
        assertUInt32(value);
        this.pos = buf.writeUInt32LE(value as number, this.pos);
        return;
      case ScalarType.SFIXED32:
        assertInt32(value);
        this.pos = buf.writeInt32LE(value as number, this.pos);
        return;
      case ScalarType.UINT32:
        this.varint(value as number);
        return;
      case ScalarType.INT32:
        if ((value as number) >= 0) this.varint(value as number);
        else this.varint64(value as number, -1);
        return;
      case ScalarType.SINT32:
        this.varint((((value as number) << 1) ^ ((value as number) >> 31)) >>> 0);
        return;
      case ScalarType.UINT64: {
        if (typeof value === "bigint" && value >= 0n && value <= 0xffff_ffffn) {
          this.varint(Number(value));
          return;
        }
        const { lo, hi } = protoInt64.uEnc(value as bigint);
        this.varint64(lo, hi);
        return;
      }
      case ScalarType.INT64: {
        const { lo, hi } = protoInt64.enc(value as bigint);
        this.varint64(lo, hi);
        return;
      }
      case ScalarType.SINT64: {
        const { lo, hi } = zigzag64(value as bigint);
        this.varint64(lo, hi);
        return;
      }
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64: {
        const { lo, hi } = scalar === ScalarType.FIXED64 ? protoInt64.uEnc(value as bigint) : protoInt64.enc(value as bigint);
        buf.writeInt32LE(lo, this.pos);
        this.pos = buf.writeInt32LE(hi, this.pos + 4);
        return;
      }
    }
  }
}

// Reading: the loop of protobuf-es's readMessage without its reflection layer.

const RECURSION_LIMIT = 100;

function zeroMessage(plan: MessagePlan): Message {
  const msg: Message = { $typeName: plan.typeName };
  for (const [name, zero] of plan.zeroMembers) msg[name] = zero();
  return msg;
}

/** protobuf-es's reader, plus the tag as one number (its `tag()` allocates a pair per field). */
class Reader extends BinaryReader {
  rawTag(): number {
    const start = this.pos;
    const tag = this.uint32();
    const bytesRead = this.pos - start;
    if (bytesRead > 5 || (bytesRead === 5 && (this.buf[this.pos - 1] as number) > 0x0f)) throw new Error("illegal tag: varint overflows uint32");
    if (tag >>> 3 <= 0 || (tag & 7) > 5) throw new Error(`illegal tag: field no ${tag >>> 3} wire type ${tag & 7}`);
    return tag;
  }
}

function readMessage(plan: MessagePlan, reader: Reader, length: number, msg: Message, depth: number): Message {
  if (++depth > RECURSION_LIMIT) throw new Error(`cannot decode ${plan.typeName} from binary: maximum recursion depth of ${RECURSION_LIMIT} reached`);
  const end = reader.pos + length;
  const unknown = msg.$unknown ?? [];
  while (reader.pos < end) {
    const tag = reader.rawTag();
    const number = tag >>> 3;
    const wireType = (tag & 7) as WireType;
    const field = number < plan.byLowNumber.length ? plan.byLowNumber[number] : plan.byNumber.get(number);
    if (field === undefined) {
      unknown.push({ no: number, wireType, data: reader.skip(wireType, number, RECURSION_LIMIT - depth) });
      continue;
    }
    if (field.kind === "map") {
      readMapEntry(field, reader, msg[field.name] as Record<string, unknown>, depth);
      continue;
    }
    if (field.kind === "list") {
      const list = msg[field.name] as unknown[];
      if (field.message) {
        list.push(readMessage(field.message, reader, reader.uint32(), zeroMessage(field.message), depth));
      } else if (wireType === WireType.LengthDelimited && field.scalar !== ScalarType.STRING && field.scalar !== ScalarType.BYTES) {
        const listEnd = reader.uint32() + reader.pos;
        while (reader.pos < listEnd) list.push(readScalar(reader, field));
      } else {
        list.push(readScalar(reader, field));
      }
      continue;
    }
    let value: unknown;
    if (field.message) {
      const current =
        field.oneof === undefined
          ? msg[field.name]
          : (msg[field.oneof] as { case?: string; value?: unknown }).case === field.name
            ? (msg[field.oneof] as { value?: unknown }).value
            : undefined;
      value = readMessage(field.message, reader, reader.uint32(), (current as Message | undefined) ?? zeroMessage(field.message), depth);
    } else {
      value = readScalar(reader, field);
    }
    if (field.oneof === undefined) msg[field.name] = value;
    else msg[field.oneof] = { case: field.name, value };
  }
  if (unknown.length > 0) msg.$unknown = unknown;
  return msg;
}

/**
 * One entry into `map`, as protobuf-es's readMapEntry reads it: the last key and
 * value win, a missing one is its zero, and any other field number is passed
 * over without reading its value (protobuf-es does not skip it either).
 */
function readMapEntry(field: FieldPlan, reader: Reader, map: Record<string, unknown>, depth: number): void {
  const valueField = field.mapValue as FieldPlan;
  const length = reader.uint32();
  const end = reader.pos + length;
  let key: string | undefined;
  let value: unknown;
  while (reader.pos < end) {
    const number = reader.rawTag() >>> 3;
    if (number === 1) key = readString(reader, field.utf8Validation);
    else if (number === 2) {
      value = valueField.message
        ? readMessage(valueField.message, reader, reader.uint32(), zeroMessage(valueField.message), depth)
        : readScalar(reader, valueField);
    }
  }
  map[key ?? ""] = value ?? (valueField.message ? zeroMessage(valueField.message) : valueField.zero());
}

function readScalar(reader: Reader, field: FieldPlan): unknown {
  switch (field.scalar) {
    case ScalarType.STRING:
      return readString(reader, field.utf8Validation);
    case ScalarType.BOOL:
      return reader.bool();
    case ScalarType.DOUBLE:
      return reader.double();
    case ScalarType.FLOAT:
      return reader.float();
    case ScalarType.INT32:
      return reader.int32();
    case ScalarType.INT64:
      return reader.int64();
    case ScalarType.UINT64:
      return reader.uint64();
    case ScalarType.FIXED64:
      return reader.fixed64();
    case ScalarType.BYTES:
      return reader.bytes();
    case ScalarType.FIXED32:
      return reader.fixed32();
    case ScalarType.SFIXED32:
      return reader.sfixed32();
    case ScalarType.SFIXED64:
      return reader.sfixed64();
    case ScalarType.SINT64:
      return reader.sint64();
    case ScalarType.UINT32:
      return reader.uint32();
    case ScalarType.SINT32:
      return reader.sint32();
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const lenientUtf8 = new TextDecoder("utf-8");

/** ASCII, the common case (names, versions, outputs), without a TextDecoder call. */
function readString(reader: Reader, strict: boolean): string {
  const bytes = reader.bytes();
  const n = bytes.length;
  if (n <= 64) {
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if ((bytes[i] as number) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return (strict ? strictUtf8 : lenientUtf8).decode(bytes);
}
