import http from "node:http";
import { createClient } from "@connectrpc/connect";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { PredictionService } from "../../gen/clipper/v1/prediction_service_pb.js";
import { createGrpcTransport } from "../../services/shared/index.js";
import type { InputMix } from "./inputs.js";
import type { Outcome, SendFn } from "./loadgen.js";
import { rawHttpClient } from "./raw-http.js";

/** A way of sending one prediction request, with the connections it holds. */
export interface Target {
  readonly send: SendFn;
  close(): void;
}

const REQUEST_TIMEOUT_MS = 30_000;
/** Responses are small; anything larger is a bug in the server, not a prediction. */
const MAX_RESPONSE_BYTES = 1 << 20;

export interface RestTargetOptions {
  /** http://127.0.0.1:PORT/path to POST to. */
  url: string;
  mix: InputMix;
  /** Persistent connections kept (one per concurrent client). */
  connections: number;
  /**
   * Whether a 200 body is the application's default. The gateway answers
   * `"default":true`; a baseline without defaults never answers one.
   */
  isDefault?: (body: string) => boolean;
  /**
   * raw (default): the wrk-like client in raw-http.ts; node-http: node:http with
   * a keep-alive agent, which on this machine limits itself near 8k requests/s.
   */
  client?: "raw" | "node-http";
}

/** Clipper's REST answer marks a default with `"default":true` (JSON.stringify spacing). */
export const gatewayDefault = (body: string) => body.includes('"default":true');

/** POSTs JSON over keep-alive connections with TCP_NODELAY. */
export function restTarget(options: RestTargetOptions): Target {
  const url = new URL(options.url);
  if (url.hostname !== "127.0.0.1") throw new Error(`the load generator only targets 127.0.0.1, not ${url.hostname}`);
  const isDefault = options.isDefault ?? (() => false);
  if ((options.client ?? "raw") === "raw") {
    return rawHttpClient({
      host: "127.0.0.1",
      port: Number(url.port),
      path: url.pathname,
      connections: options.connections,
      maxWaiting: 4096,
      timeoutMs: REQUEST_TIMEOUT_MS,
      body: options.mix.restBody,
      classify: (status, body) => {
        if (status !== 200) throw new Error(`HTTP ${status}: ${body.slice(0, 200)}`);
        return isDefault(body) ? "default" : "ok";
      },
    });
  }
  return nodeHttpTarget(url, options, isDefault);
}

function nodeHttpTarget(url: URL, options: RestTargetOptions, isDefault: (body: string) => boolean): Target {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections, maxFreeSockets: options.connections, noDelay: true });
  const send: SendFn = (sequence) =>
    new Promise<Outcome>((resolve, reject) => {
      const body = options.mix.restBody(sequence);
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) res.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
            else resolve(isDefault(text) ? "default" : "ok");
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  return { send, close: () => agent.destroy() };
}

function checkLoopback(address: string): void {
  if (!address.startsWith("127.0.0.1:")) throw new Error(`the load generator only targets 127.0.0.1, not ${address}`);
}

/** PredictionService.Predict on the gateway over one grpc-js channel (HTTP/2 multiplexes the clients). */
export function grpcGatewayTarget(address: string, application: string, mix: InputMix): Target {
  checkLoopback(address);
  const transport = createGrpcTransport({ address });
  const client = createClient(PredictionService, transport);
  const send: SendFn = async (sequence) => {
    const res = await client.predict(
      { application, input: { value: { case: "doubles", value: { values: mix.values(sequence) } } } },
      { timeoutMs: REQUEST_TIMEOUT_MS },
    );
    return res.prediction?.default === true ? "default" : "ok";
  };
  return { send, close: () => transport.close() };
}

/** ModelService.Predict with a batch of one, straight to a model container: the floor under our overhead. */
export function modelDirectTarget(address: string, mix: InputMix): Target {
  checkLoopback(address);
  const transport = createGrpcTransport({ address });
  const client = createClient(ModelService, transport);
  const send: SendFn = async (sequence) => {
    const values = mix.values(sequence);
    const res = await client.predict({ inputs: { type: InputType.DOUBLES, lengths: [values.length], doubles: values } }, { timeoutMs: REQUEST_TIMEOUT_MS });
    const output = res.outputs[0];
    if (output?.result.case !== "value") throw new Error(`model answered ${output?.result.value ?? "nothing"}`);
    return "ok";
  };
  return { send, close: () => transport.close() };
}
