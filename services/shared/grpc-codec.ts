import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { binaryCodec } from "./binary-codec.js";

/** The HTTP/2 path gRPC uses for a method: `/package.Service/Method`. */
export function grpcPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

export function serializer<D extends DescMessage>(desc: D): (value: MessageInitShape<D>) => Buffer {
  return binaryCodec(desc).encode;
}

export function deserializer<D extends DescMessage>(desc: D): (bytes: Buffer) => MessageShape<D> {
  return binaryCodec(desc).decode;
}

/** Turns any thrown value into the ConnectError a client of ours sees. */
export function fromServiceError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code === "number") {
    return new ConnectError(e.details ?? e.message ?? "", e.code as number as Code);
  }
  return ConnectError.from(err, Code.Unknown);
}

/** Headers from gRPC metadata; binary entries are skipped. */
export function metadataToHeaders(md: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(md.getMap())) {
    if (typeof values === "string") headers.append(key, values);
  }
  return headers;
}

/** What `new Headers()` accepts (HeadersInit is a DOM type, not in @types/node). */
export type HeadersInput = ConstructorParameters<typeof Headers>[0];

export function headersToMetadata(init: HeadersInput | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (init === undefined) return md;
  for (const [key, value] of new Headers(init)) md.add(key, value);
  return md;
}
