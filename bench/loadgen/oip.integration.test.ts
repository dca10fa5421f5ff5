import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GRPCInferenceService, type ModelInferRequest } from "../../gen/inference/grpc_predict_v2_pb.js";
import { type RunningGrpcServer, registration, startGrpcServer } from "../../services/shared/index.js";
import { uniqueMix } from "./inputs.js";
import { runClosedLoop } from "./loadgen.js";
import { oipGrpcTarget, oipRestAnswers, oipRestTarget } from "./oip.js";

/** An OIP REST server that answers like our gateway (output + default tensors) or like MLServer (one INT64 output). */
function restServer(received: unknown[]) {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { inputs: { shape: number[]; data: number[] }[] };
      received.push({ url: req.url, contentType: req.headers["content-type"], body });
      const rows = body.inputs[0]?.shape[0] ?? 0;
      const answer = req.url?.startsWith("/v2/models/like-ours")
        ? {
            outputs: [
              { name: "output", datatype: "FP64", shape: [rows], data: Array(rows).fill(3) },
              { name: "default", datatype: "BOOL", shape: [rows], data: Array(rows).fill(req.url.includes("defaulting")) },
            ],
          }
        : { outputs: [{ name: "predict", datatype: "INT64", shape: [rows, 1], data: Array.from({ length: rows }, () => [3]) }] };
      res.writeHead(req.url?.includes("missing") ? 404 : 200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    });
  });
}

describe("OIP targets", () => {
  const received: unknown[] = [];
  const grpcRequests: ModelInferRequest[] = [];
  let server: http.Server;
  let baseUrl: string;
  let grpc: RunningGrpcServer;

  beforeAll(async () => {
    server = restServer(received);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    grpc = await startGrpcServer({
      port: 0,
      services: [
        registration(GRPCInferenceService, {
          modelInfer(req) {
            grpcRequests.push(req);
            const rows = Number(req.inputs[0]?.shape[0] ?? 0n);
            if (req.modelName === "triton-like") {
              // Raw little-endian FP64 answers and a BOOL default tensor, as Triton and our gateway answer.
              const raw = new DataView(new ArrayBuffer(8 * rows));
              for (let i = 0; i < rows; i++) raw.setFloat64(8 * i, 7 + i, true);
              return {
                modelName: req.modelName,
                outputs: [
                  { name: "output", datatype: "FP64", shape: [BigInt(rows)] },
                  { name: "default", datatype: "BOOL", shape: [BigInt(rows)] },
                ],
                rawOutputContents: [new Uint8Array(raw.buffer), new Uint8Array(rows).fill(1)],
              };
            }
            // Typed INT64 contents, as MLServer answers.
            return {
              modelName: req.modelName,
              outputs: [{ name: "predict", datatype: "INT64", shape: [BigInt(rows), 1n], contents: { int64Contents: Array(rows).fill(4n) } }],
            };
          },
        }),
      ],
    });
  });

  afterAll(async () => {
    await grpc.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it("REST: sends one FP64 [1, k] tensor named input as JSON, and tells our defaults from answers", async () => {
    const mix = uniqueMix("u", [1.5, 2.5, 3.5]);
    const target = oipRestTarget({ baseUrl, model: "like-ours", mix, connections: 2, client: "raw" });
    try {
      const result = await runClosedLoop({ send: target.send, concurrency: 2, durationMs: 200, warmupMs: 0 });
      expect(result.errorRate).toBe(0);
      expect(result.defaultRate).toBe(0);
      expect(result.ok).toBeGreaterThan(0);
    } finally {
      target.close();
    }
    const first = received[0] as { url: string; contentType: string; body: { inputs: unknown[] } };
    expect(first.url).toBe("/v2/models/like-ours/infer");
    expect(first.contentType).toBe("application/json");
    expect(first.body.inputs).toEqual([{ name: "input", datatype: "FP64", shape: [1, 3], data: [1.5, 2.5, 3.5] }]);

    const defaulting = oipRestTarget({ baseUrl, model: "like-ours-defaulting", mix, connections: 1, client: "raw" });
    try {
      expect(await defaulting.send(0)).toBe("default");
    } finally {
      defaulting.close();
    }
  });

  it("REST: reads a batch's answers from the first output other than default, and refuses an error status", async () => {
    expect(await oipRestAnswers(baseUrl, "like-ours", [[1], [2]])).toEqual([3, 3]);
    expect(await oipRestAnswers(baseUrl, "mlserver-like", [[1], [2], [3]])).toEqual([3, 3, 3]);
    await expect(oipRestAnswers(baseUrl, "missing", [[1]])).rejects.toThrow(/HTTP 404/);
  });

  it("gRPC: sends fp64_contents and decodes raw (Triton, ours) and typed (MLServer) outputs", async () => {
    const mix = uniqueMix("u", [0.5, 1.5]);
    const triton = oipGrpcTarget(grpc.address, "triton-like", mix);
    const mlserver = oipGrpcTarget(grpc.address, "mlserver-like", mix);
    try {
      expect(
        await triton.infer([
          [1, 2],
          [3, 4],
        ]),
      ).toEqual([7, 8]);
      expect(await mlserver.infer([[1, 2]])).toEqual([4]);
      // The raw BOOL default tensor is true: counted as our default, not an answer.
      expect(await triton.send(0)).toBe("default");
      expect(await mlserver.send(1)).toBe("ok");
    } finally {
      triton.close();
      mlserver.close();
    }
    const sent = grpcRequests.at(-1);
    expect(sent?.inputs[0]?.shape).toEqual([1n, 2n]);
    expect(sent?.inputs[0]?.contents?.fp64Contents).toEqual(mix.values(1));
  });

  it("only targets loopback", () => {
    expect(() => oipGrpcTarget("10.0.0.1:8001", "m", uniqueMix("u", [1]))).toThrow(/only targets 127.0.0.1/);
    expect(() => oipRestTarget({ baseUrl: "http://10.0.0.1:8000", model: "m", mix: uniqueMix("u", [1]), connections: 1, client: "raw" })).toThrow(
      /only targets 127.0.0.1/,
    );
  });
});
