import { create, type DescMessage, type DescService, fromBinary, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition, ServiceError } from "@grpc/grpc-js";
import { Code, StatusError } from "./errors.js";

/**
 * What a request that is not a valid protobuf message decodes to: the handler
 * answers it INVALID_ARGUMENT (a throwing deserializer would make grpc-js
 * answer INTERNAL, and the bytes are the caller's mistake).
 */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** A request as a handler receives it: the message, or why its bytes were not one. */
export type Received<D extends DescMessage> = MessageShape<D> | UndecodableRequest;

/**
 * The grpc-js definition of a protobuf-es service (there is no grpc-js code
 * generator for protobuf-es): method paths and streaming from the descriptor,
 * messages written and read by protobuf-es. Handlers answer init shapes.
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: encoder(method.input),
      requestDeserialize: (bytes: Buffer): Received<DescMessage> => {
        try {
          return fromBinary(method.input, bytes);
        } catch (err) {
          return new UndecodableRequest(`the request is not a valid ${method.input.typeName} message: ${(err as Error).message}`);
        }
      },
      responseSerialize: encoder(method.output),
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
      originalName: method.localName,
    };
  }
  return definition;
}

function encoder(schema: DescMessage): (value: unknown) => Buffer {
  return (value) => {
    const bytes = toBinary(schema, create(schema, value as MessageInitShape<DescMessage>));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** The gRPC status of a handler's failure: a StatusError's own code; anything else is INTERNAL without its details. */
export function grpcStatus(err: unknown, method: string): Partial<ServiceError> {
  if (err instanceof StatusError) return { code: err.code as number, details: err.message };
  return { code: Code.Internal as number, details: `internal error in ${method}` };
}
