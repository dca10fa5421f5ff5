// The Open Inference Protocol (KServe v2) as a load generator's target: the one protocol our
// gateway, MLServer and Triton all speak, so peers are driven with the same requests. One input
// per request: an FP64 tensor of shape [1, k] named "input" (Triton checks the name).
import { createClient } from "@connectrpc/connect";
import { GRPCInferenceService, type ModelInferResponse, type ModelInferResponse_InferOutputTensor } from "../../gen/inference/grpc_predict_v2_pb.js";
import { createGrpcTransport } from "../../services/shared/index.js";
import type { InputMix } from "./inputs.js";
import type { SendFn } from "./loadgen.js";
import { restTarget, type Target } from "./targets.js";

const REQUEST_TIMEOUT_MS = 30_000;

/** The JSON infer body of one input. */
export function oipRestBody(values: number[]): string {
  return `{"inputs":[{"name":"input","datatype":"FP64","shape":[1,${values.length}],"data":[${values.join(",")}]}]}`;
}

/**
 * Whether our gateway answered the application's default: its `default` BOOL tensor is true.
 * A peer has no defaults and no such tensor.
 */
export const oipRestDefault = (body: string) => /"name":"default"[^}]*"data":\[true\]/.test(body);

export interface OipRestTargetOptions {
  /** http://127.0.0.1:PORT (the server's root; the path is /v2/models/{model}/infer). */
  baseUrl: string;
  model: string;
  mix: InputMix;
  connections: number;
  client: "raw" | "node-http";
}

/** POST /v2/models/{model}/infer with JSON data, through the same REST clients as every other target. */
export function oipRestTarget(options: OipRestTargetOptions): Target {
  const mix: InputMix = { ...options.mix, restBody: (sequence) => oipRestBody(options.mix.values(sequence)) };
  return restTarget({
    url: `${options.baseUrl}/v2/models/${options.model}/infer`,
    mix,
    connections: options.connections,
    isDefault: oipRestDefault,
    client: options.client,
  });
}

/** inference.GRPCInferenceService/ModelInfer over one grpc-js channel, data in fp64_contents. */
export function oipGrpcTarget(address: string, model: string, mix: InputMix): Target & { infer(values: number[][]): Promise<number[]> } {
  if (!address.startsWith("127.0.0.1:")) throw new Error(`the load generator only targets 127.0.0.1, not ${address}`);
  const transport = createGrpcTransport({ address });
  const client = createClient(GRPCInferenceService, transport);
  const call = (rows: number[][]) =>
    client.modelInfer(
      {
        modelName: model,
        inputs: [{ name: "input", datatype: "FP64", shape: [BigInt(rows.length), BigInt(rows[0]?.length ?? 0)], contents: { fp64Contents: rows.flat() } }],
      },
      { timeoutMs: REQUEST_TIMEOUT_MS },
    );
  const send: SendFn = async (sequence) => {
    const res = await call([mix.values(sequence)]);
    return grpcOutput(res, "default")?.[0] === 1 ? "default" : "ok";
  };
  return { send, close: () => transport.close(), infer: async (rows) => grpcAnswers(await call(rows)) };
}

/** The answers of a JSON infer response as numbers: its first output other than `default`, flattened. */
export function restAnswers(body: string): number[] {
  const parsed = JSON.parse(body) as { outputs?: { name: string; data: unknown[] }[] };
  const output = parsed.outputs?.find((o) => o.name !== "default");
  if (output === undefined) throw new Error(`no output tensor in ${body.slice(0, 200)}`);
  return (output.data.flat(8) as unknown[]).map(Number);
}

/** POSTs `rows` as one batch and returns the answers (for checking a server before timing it). */
export async function oipRestAnswers(baseUrl: string, model: string, rows: number[][]): Promise<number[]> {
  const body = JSON.stringify({ inputs: [{ name: "input", datatype: "FP64", shape: [rows.length, rows[0]?.length ?? 0], data: rows.flat() }] });
  const res = await fetch(`${baseUrl}/v2/models/${model}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${model}: HTTP ${res.status}: ${text.slice(0, 200)}`);
  return restAnswers(text);
}

function grpcAnswers(res: ModelInferResponse): number[] {
  const index = res.outputs.findIndex((o) => o.name !== "default");
  if (index < 0) throw new Error("no output tensor in the ModelInfer answer");
  return tensorNumbers(res, index);
}

function grpcOutput(res: ModelInferResponse, name: string): number[] | undefined {
  const index = res.outputs.findIndex((o) => o.name === name);
  return index < 0 ? undefined : tensorNumbers(res, index);
}

/** An output tensor's elements, from raw_output_contents (Triton, our gateway) or typed contents (MLServer). */
function tensorNumbers(res: ModelInferResponse, index: number): number[] {
  const tensor = res.outputs[index] as ModelInferResponse_InferOutputTensor;
  const raw = res.rawOutputContents[index];
  if (raw !== undefined && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const width = { FP64: 8, FP32: 4, INT64: 8, INT32: 4, BOOL: 1 }[tensor.datatype];
    if (width === undefined) throw new Error(`output ${tensor.name}: datatype ${tensor.datatype} not decoded here`);
    return Array.from({ length: raw.byteLength / width }, (_, i) => {
      const at = i * width;
      switch (tensor.datatype) {
        case "FP64":
          return view.getFloat64(at, true);
        case "FP32":
          return view.getFloat32(at, true);
        case "INT64":
          return Number(view.getBigInt64(at, true));
        case "INT32":
          return view.getInt32(at, true);
        default:
          return view.getUint8(at);
      }
    });
  }
  const c = tensor.contents;
  if (c === undefined) return [];
  if (c.fp64Contents.length > 0) return c.fp64Contents;
  if (c.fp32Contents.length > 0) return c.fp32Contents;
  if (c.int64Contents.length > 0) return c.int64Contents.map(Number);
  if (c.intContents.length > 0) return c.intContents;
  return c.boolContents.map((b) => (b ? 1 : 0));
}

/** ModelInfer's request as the JSON ghz sends: one FP64 tensor of shape [1, k] in fp64_contents. */
export function oipGhzRequest(model: string, values: number[]): string {
  return JSON.stringify({ model_name: model, inputs: [{ name: "input", datatype: "FP64", shape: [1, values.length], contents: { fp64_contents: values } }] });
}

/** The marker of our gateway's default answer in a one-row JSON infer response (its BOOL `default` tensor); peers answer FP64 only. */
export const OIP_REST_DEFAULT_MARKER = '"data":[true]';
