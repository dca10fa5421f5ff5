import type { InferParameter, ModelInferRequest } from "../../../gen/inference/grpc_predict_v2_pb.js";
import { invalidArgument } from "../../shared/index.js";
import type { TypedContents } from "./tensors.js";

/** A request or tensor parameter's value, from JSON or from an InferParameter's arm. */
export type ParameterValue = boolean | number | bigint | string;

/** An input tensor as the request carried it, before it is checked against the application. */
export interface RequestTensor {
  name: string;
  datatype: string;
  shape: readonly (number | bigint)[];
  data: { kind: "json"; data: unknown } | { kind: "raw"; raw: Uint8Array } | { kind: "typed"; contents: TypedContents };
}

export interface RequestedOutput {
  name: string;
  /** HTTP only: answer this output in the binary tensor extension. */
  binary: boolean;
}

/** One inference request, whichever transport carried it. */
export interface InferCall {
  model: string;
  /** "" for the application's current model versions. */
  version: string;
  id: string;
  tensor: RequestTensor;
  /** Undefined: every output. */
  outputs: RequestedOutput[] | undefined;
  /** HTTP only: every output in the binary tensor extension (`binary_data_output`), unless `outputs` says otherwise. */
  binaryDataOutput: boolean;
  /** From the `timeout` parameter (µs); undefined when absent or 0 (no timeout). */
  timeoutMs: number | undefined;
  /** From the `priority` parameter: 0 is the default, 1 the highest, larger numbers lower. */
  priority: number;
}

/** Triton's sequence batcher's parameters: refused when set. Other parameters Clipper does not act on are ignored, as OIP allows. */
const SEQUENCE_PARAMETERS = ["sequence_id", "sequence_start", "sequence_end"];

function nonNegativeInteger(name: string, value: ParameterValue): number {
  const n = typeof value === "bigint" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)
    throw invalidArgument(`parameter "${name}" must be a non-negative integer, not ${JSON.stringify(String(value))}`);
  return n;
}

/** The request parameters Clipper acts on: `timeout` (µs), `priority`; sequence parameters are refused (no sequence batching). */
export function requestParameters(parameters: ReadonlyMap<string, ParameterValue>): Pick<InferCall, "timeoutMs" | "priority" | "binaryDataOutput"> {
  for (const name of SEQUENCE_PARAMETERS) {
    const value = parameters.get(name);
    if (value !== undefined && value !== 0 && value !== 0n && value !== false && value !== "") {
      throw invalidArgument(`parameter "${name}": sequence batching is not supported (a Clipper application answers each request on its own)`);
    }
  }
  const timeout = parameters.get("timeout");
  const timeoutMicros = timeout === undefined ? 0 : nonNegativeInteger("timeout", timeout);
  const priority = parameters.get("priority");
  const binary = parameters.get("binary_data_output");
  if (binary !== undefined && typeof binary !== "boolean") throw invalidArgument(`parameter "binary_data_output" must be a boolean`);
  return {
    timeoutMs: timeoutMicros === 0 ? undefined : timeoutMicros / 1000,
    priority: priority === undefined ? 0 : nonNegativeInteger("priority", priority),
    binaryDataOutput: binary === true,
  };
}

/** An InferParameter's value; an unset oneof is refused by name. */
export function parameterValue(name: string, p: InferParameter): ParameterValue {
  if (p.parameterChoice.case === undefined)
    throw invalidArgument(`parameter "${name}" has no value (set one of bool_param, int64_param, string_param, double_param, uint64_param)`);
  return p.parameterChoice.value;
}

function grpcParameters(parameters: { [key: string]: InferParameter }): Map<string, ParameterValue> {
  return new Map(Object.entries(parameters).map(([name, p]) => [name, parameterValue(name, p)]));
}

function oneTensor<T extends { name: string }>(inputs: readonly T[], model: string): T {
  const [first, ...rest] = inputs;
  if (first === undefined) throw invalidArgument(`the request has no input tensor: model "${model}" takes one, named "input"`);
  if (rest.length > 0) {
    throw invalidArgument(
      `the request has ${inputs.length} input tensors (${inputs.map((t) => `"${t.name}"`).join(", ")}): model "${model}" takes one, a Clipper application's input`,
    );
  }
  return first;
}

/** A gRPC ModelInferRequest: one input tensor, its data in raw_input_contents or in typed contents. */
export function inferCallFromGrpc(req: ModelInferRequest): InferCall {
  if (req.modelName === "") throw invalidArgument("model_name is missing");
  const input = oneTensor(req.inputs, req.modelName);
  const parameters = requestParameters(grpcParameters(req.parameters));
  let data: RequestTensor["data"];
  if (req.rawInputContents.length > 0) {
    if (req.rawInputContents.length !== req.inputs.length) {
      throw invalidArgument(`raw_input_contents has ${req.rawInputContents.length} entries for ${req.inputs.length} input tensor: one per input`);
    }
    if (input.contents !== undefined) throw invalidArgument(`input tensor "${input.name}" has both contents and raw_input_contents: send one`);
    data = { kind: "raw", raw: req.rawInputContents[0] as Uint8Array };
  } else {
    if (input.contents === undefined) throw invalidArgument(`input tensor "${input.name}" has no data: fill its contents or raw_input_contents`);
    data = { kind: "typed", contents: input.contents };
  }
  const outputs =
    req.outputs.length === 0
      ? undefined
      : req.outputs.map((o, i) => {
          if (o.parameters.classification !== undefined) throw invalidArgument(`outputs[${i}]: the classification extension is not supported`);
          return { name: o.name, binary: false };
        });
  return {
    model: req.modelName,
    version: req.modelVersion,
    id: req.id,
    tensor: { name: input.name, datatype: input.datatype, shape: input.shape, data },
    outputs,
    ...parameters,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function jsonParameters(v: unknown, field: string): Map<string, ParameterValue> {
  if (v === undefined) return new Map();
  if (!isObject(v)) throw invalidArgument(`${field} must be a JSON object`);
  const out = new Map<string, ParameterValue>();
  for (const [name, value] of Object.entries(v)) {
    if (typeof value !== "boolean" && typeof value !== "number" && typeof value !== "string") {
      throw invalidArgument(`${field}.${name} must be a boolean, a number or a string`);
    }
    out.set(name, value);
  }
  return out;
}

/**
 * A REST inference request body: JSON, or with Triton's binary tensor
 * extension the JSON header (`Inference-Header-Content-Length` bytes) followed
 * by the tensors' bytes, each input naming its size in `binary_data_size`.
 */
export function inferCallFromHttp(model: string, version: string, body: Buffer, headerLength: string | undefined): InferCall {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isSafeInteger(n) || n < 0 || n > body.length) {
      throw invalidArgument(
        `Inference-Header-Content-Length is ${JSON.stringify(headerLength)}: it must be an integer from 0 to the body's length (${body.length})`,
      );
    }
    jsonEnd = n;
  }
  let header: unknown;
  try {
    header = JSON.parse(body.subarray(0, jsonEnd).toString("utf8"));
  } catch (err) {
    throw invalidArgument(`the inference request is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(header)) throw invalidArgument("the inference request must be a JSON object");
  if (header.inputs !== undefined && !Array.isArray(header.inputs)) throw invalidArgument(`"inputs" must be an array of tensors`);
  const inputs = (header.inputs ?? []) as unknown[];
  const named = inputs.map((t, i) => {
    if (!isObject(t)) throw invalidArgument(`inputs[${i}] must be a JSON object`);
    if (typeof t.name !== "string") throw invalidArgument(`inputs[${i}].name must be a string`);
    return t as Record<string, unknown> & { name: string };
  });
  const input = oneTensor(named, model);
  const field = `input tensor "${input.name}"`;
  if (typeof input.datatype !== "string") throw invalidArgument(`${field}: "datatype" must be a string`);
  if (!Array.isArray(input.shape) || !input.shape.every((d) => typeof d === "number")) throw invalidArgument(`${field}: "shape" must be an array of integers`);
  const binarySize = jsonParameters(input.parameters, `${field}: parameters`).get("binary_data_size");
  const binary = body.subarray(jsonEnd);
  let data: RequestTensor["data"];
  if (binarySize !== undefined) {
    const size = typeof binarySize === "number" && Number.isSafeInteger(binarySize) && binarySize >= 0 ? binarySize : -1;
    if (size < 0) throw invalidArgument(`${field}: parameters.binary_data_size must be a non-negative integer`);
    if (headerLength === undefined) throw invalidArgument(`${field} has binary_data_size but the request has no Inference-Header-Content-Length header`);
    if (size !== binary.length) {
      throw invalidArgument(
        `${field} has binary_data_size ${size}, but ${binary.length} bytes follow the JSON header (Inference-Header-Content-Length ${jsonEnd})`,
      );
    }
    if (input.data !== undefined) throw invalidArgument(`${field} has both "data" and binary_data_size: send one`);
    data = { kind: "raw", raw: binary };
  } else {
    if (binary.length > 0) throw invalidArgument(`${binary.length} bytes follow the JSON header, but no input tensor has binary_data_size`);
    if (input.data === undefined) throw invalidArgument(`${field} has no "data" (nor binary_data_size)`);
    data = { kind: "json", data: input.data };
  }
  if (header.id !== undefined && typeof header.id !== "string") throw invalidArgument(`"id" must be a string`);
  return {
    model,
    version,
    id: header.id ?? "",
    tensor: { name: input.name, datatype: input.datatype, shape: input.shape as number[], data },
    outputs: httpOutputs(header.outputs),
    ...requestParameters(jsonParameters(header.parameters, "parameters")),
  };
}

function httpOutputs(v: unknown): RequestedOutput[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalidArgument(`"outputs" must be an array`);
  return v.map((o, i) => {
    if (!isObject(o) || typeof o.name !== "string") throw invalidArgument(`outputs[${i}] must be an object with a "name"`);
    const parameters = jsonParameters(o.parameters, `outputs[${i}].parameters`);
    if (parameters.has("classification")) throw invalidArgument(`outputs[${i}]: the classification extension is not supported`);
    const binary = parameters.get("binary_data");
    if (binary !== undefined && typeof binary !== "boolean") throw invalidArgument(`outputs[${i}].parameters.binary_data must be a boolean`);
    return { name: o.name, binary: binary === true };
  });
}
