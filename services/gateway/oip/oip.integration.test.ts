import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../../gen/clipper/model/v1/model_service_pb.js";
import { ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { DataType, GRPCInferenceService, type ModelInferRequestSchema } from "../../../gen/inference/grpc_predict_v2_pb.js";
import { type RunningRouter, startRouter } from "../../router/index.js";
import {
  Code,
  type ConfigWatcher,
  ConnectError,
  createGrpcTransport,
  createLogger,
  type GrpcTransport,
  hashToken,
  prom,
  type RunningGrpcServer,
  registration,
  startGrpcServer,
  watchConfig,
} from "../../shared/index.js";
import { startSnapshotRegistry } from "../../shared/testing/snapshot-registry.js";
import { AppKeys, connectRouter, type RouterLink, type RunningGateway, startGateway } from "../index.js";

const MAX_BODY_BYTES = 64 * 1024;
const KEY = "locked-key";
const logger = createLogger({ service: "test", level: "silent" });

/** A model replica answering each input's sum, or each string upper-cased. */
function startModel(): Promise<RunningGrpcServer> {
  return startGrpcServer({
    port: 0,
    services: [
      registration(ModelService, {
        predict(req) {
          const inputs = req.inputs;
          if (inputs === undefined) return { outputs: [] };
          if (inputs.type === InputType.STRINGS)
            return { outputs: inputs.strings.map((s) => ({ result: { case: "value" as const, value: s.toUpperCase() } })) };
          let offset = 0;
          return {
            outputs: inputs.lengths.map((n) => {
              const values = inputs.doubles.slice(offset, offset + n);
              offset += n;
              return { result: { case: "value" as const, value: String(values.reduce((a, b) => a + b, 0)) } };
            }),
          };
        },
      }),
    ],
  });
}

describe("the Open Inference Protocol at the gateway (REST and gRPC on one port)", () => {
  let model: RunningGrpcServer;
  let registry: RunningGrpcServer;
  let router: RunningRouter;
  let config: ConfigWatcher;
  let routerLink: RouterLink;
  let gateway: RunningGateway;
  let transport: GrpcTransport;
  let base: string;
  const metrics = new prom.Registry();

  beforeAll(async () => {
    model = await startModel();
    const replicas = (name: string) => ({
      modelName: name,
      modelVersion: "1",
      replicas: [{ id: `${name}-0`, modelName: name, modelVersion: "1", endpoint: model.address, state: ReplicaState.READY }],
    });
    registry = await startSnapshotRegistry({
      revision: 1n,
      applications: [
        { name: "sum", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n, linkedModels: ["sum-model"] },
        { name: "words", inputType: InputType.STRINGS, defaultOutput: "none", sloMicros: 5_000_000n, linkedModels: ["words-model"] },
        { name: "locked", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n, linkedModels: ["sum-model"] },
      ],
      models: [
        { name: "sum-model", version: "1", inputType: InputType.DOUBLES },
        { name: "words-model", version: "1", inputType: InputType.STRINGS },
      ],
      currentVersions: [
        { modelName: "sum-model", version: "1" },
        { modelName: "words-model", version: "1" },
      ],
      replicaSets: [replicas("sum-model"), replicas("words-model")],
    });
    router = await startRouter({
      host: "127.0.0.1",
      port: 0,
      registry: registry.address,
      limits: { maxBatch: 1000, maxInputSize: 1000 },
      maxWaitMs: 10_000,
      logger,
      metrics: new prom.Registry(),
    });
    config = watchConfig({ registry: registry.address, logger });
    routerLink = connectRouter({ address: router.address, logger });
    gateway = await startGateway({
      host: "127.0.0.1",
      port: 0,
      router: routerLink,
      config,
      registry: registry.address,
      maxBodyBytes: MAX_BODY_BYTES,
      allowRaggedBatch: false,
      queryTimeoutMs: 10_000,
      maxInFlight: 1000,
      drainMs: 1000,
      logger,
      metrics,
      appKeys: AppKeys.parse(`locked sha256:${hashToken(KEY).toString("hex")}`, "keys"),
    });
    base = `http://127.0.0.1:${gateway.port}`;
    transport = createGrpcTransport({ address: `127.0.0.1:${gateway.port}` });
    for (let i = 0; i < 200; i++) {
      if ((await fetch(`${base}/v2/models/sum/ready`)).status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("the sum model never became ready");
  }, 60_000);

  afterAll(async () => {
    transport?.close();
    await gateway?.close();
    routerLink?.close();
    config?.close();
    await router?.close();
    await Promise.all([registry?.close(100), model?.close(100)]);
  });

  const infer = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers } });
  const fp64 = (shape: number[], data: unknown) => ({ inputs: [{ name: "input", datatype: "FP64", shape, data }] });

  it("answers health, server and model metadata over REST", async () => {
    expect(await (await fetch(`${base}/v2/health/live`)).json()).toEqual({ live: true });
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(200);
    expect(await (await fetch(`${base}/v2`)).json()).toMatchObject({ name: "clipper", extensions: ["binary_tensor_data", "parameters"] });
    expect(await (await fetch(`${base}/v2/models/sum/versions/1`)).json()).toMatchObject({ name: "sum", versions: ["1"], inputs: [{ datatype: "FP64" }] });
    const unknown = await fetch(`${base}/v2/models/nope`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      error: 'model "nope" not found: an Open Inference Protocol model is a Clipper application, and there is no application "nope"',
    });
    expect((await fetch(`${base}/v2/models/sum/versions/9/ready`)).status).toBe(404);
    expect((await fetch(`${base}/v2/models/sum/infer`)).status).toBe(405);
    const index = (await (await fetch(`${base}/v2/repository/index`, { method: "POST", body: '{"ready": true}' })).json()) as Array<{ name: string }>;
    expect(index.map((m) => m.name)).toEqual(["locked", "sum", "words"]);
    const load = await fetch(`${base}/v2/repository/models/sum/load`, { method: "POST" });
    expect(load.status).toBe(501);
    expect(((await load.json()) as { error: string }).error).toMatch(/deploy and link models with `clipper model deploy`/);
    expect(await (await fetch(`${base}/v2/models/sum/config`)).json()).toMatchObject({
      max_batch_size: 0,
      input: [{ name: "input", data_type: "TYPE_FP64", dims: [-1, -1] }],
    });
  });

  it("infers a batch [N, k] of JSON tensors, answers JSON, and refuses a bad datatype with 400 naming it", async () => {
    const res = await infer("/v2/models/sum/infer", {
      id: "q",
      ...fp64(
        [2, 2],
        [
          [1, 2],
          [3, 4],
        ],
      ),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      model_name: "sum",
      model_version: "1",
      id: "q",
      outputs: [
        { name: "output", datatype: "FP64", shape: [2], data: [3, 7] },
        { name: "default", datatype: "BOOL", shape: [2], data: [false, false] },
      ],
    });
    const bad = await infer("/v2/models/sum/infer", { inputs: [{ name: "input", datatype: "INT32", shape: [1, 1], data: [1] }] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'input tensor "input" has datatype INT32, but application "sum" takes doubles: send FP64' });
  });

  it("speaks Triton's binary tensor extension both ways", async () => {
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: "input", datatype: "FP64", shape: [1, 2], parameters: { binary_data_size: 16 } }],
        outputs: [{ name: "output", parameters: { binary_data: true } }],
      }),
    );
    const raw = Buffer.alloc(16);
    raw.writeDoubleLE(1.25, 0);
    raw.writeDoubleLE(2, 8);
    const res = await fetch(`${base}/v2/models/sum/infer`, {
      method: "POST",
      body: Buffer.concat([header, raw]),
      headers: { "inference-header-content-length": String(header.length) },
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const headerLength = Number(res.headers.get("inference-header-content-length"));
    const json = JSON.parse(body.subarray(0, headerLength).toString()) as { outputs: Array<{ parameters: { binary_data_size: number } }> };
    expect(json.outputs).toEqual([{ name: "output", datatype: "FP64", shape: [1], parameters: { binary_data_size: 8 } }]);
    expect(body.subarray(headerLength).readDoubleLE(0)).toBe(3.25);
  });

  it("bounds tensors by the gateway's body limit, and applies app keys", async () => {
    const huge = await infer("/v2/models/sum/infer", fp64([1_000_000, 1_000_000], []));
    expect(huge.status).toBe(400);
    expect(((await huge.json()) as { error: string }).error).toMatch(/more elements than the gateway accepts in one request \(65536\)/);
    const tooLarge = await fetch(`${base}/v2/models/sum/infer`, { method: "POST", body: "x".repeat(MAX_BODY_BYTES + 1) });
    expect(tooLarge.status).toBe(413);
    const locked = await infer("/v2/models/locked/infer", fp64([1], [1]));
    expect(locked.status).toBe(401);
    expect(((await locked.json()) as { error: string }).error).toMatch(/application "locked" needs a key/);
    expect((await infer("/v2/models/locked/infer", fp64([1], [1]), { authorization: `Bearer ${KEY}` })).status).toBe(200);
  });

  it("serves inference.GRPCInferenceService: metadata, ModelInfer with raw and typed contents, errors as gRPC statuses", async () => {
    const client = createClient(GRPCInferenceService, transport);
    expect((await client.serverLive({})).live).toBe(true);
    expect((await client.serverReady({})).ready).toBe(true);
    expect((await client.modelReady({ name: "words" })).ready).toBe(true);
    const metadata = await client.modelMetadata({ name: "words" });
    expect(metadata.inputs.map((t) => [t.name, t.datatype, t.shape])).toEqual([["input", "BYTES", [-1n]]]);
    expect((await client.repositoryIndex({})).models.map((m) => [m.name, m.state])).toEqual([
      ["locked", "READY"],
      ["sum", "READY"],
      ["words", "READY"],
    ]);
    const config = (await client.modelConfig({ name: "sum" })).config;
    expect(config?.input.map((t) => [t.name, DataType[t.dataType], t.dims])).toEqual([["input", "TYPE_FP64", [-1n, -1n]]]);

    const raw = Buffer.alloc(8);
    raw.writeDoubleLE(5);
    const answer = await client.modelInfer({
      modelName: "sum",
      id: "g",
      inputs: [{ name: "input", datatype: "FP64", shape: [1n, 1n] }],
      rawInputContents: [raw],
    });
    expect(answer.id).toBe("g");
    expect(answer.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ["output", "FP64", [1n]],
      ["default", "BOOL", [1n]],
    ]);
    expect(Buffer.from(answer.rawOutputContents[0] ?? new Uint8Array()).readDoubleLE(0)).toBe(5);

    const words = await client.modelInfer({
      modelName: "words",
      inputs: [{ name: "input", datatype: "BYTES", shape: [2n], contents: { bytesContents: [Buffer.from("a"), Buffer.from("bc")] } }],
      outputs: [{ name: "output" }],
    });
    expect(Buffer.from(words.rawOutputContents[0] ?? new Uint8Array())).toEqual(Buffer.from([1, 0, 0, 0, 65, 2, 0, 0, 0, 66, 67]));

    const refused = (await client
      .modelInfer({ modelName: "sum", inputs: [{ name: "input", datatype: "FP32", shape: [1n], contents: { fp32Contents: [1] } }] })
      .catch((e: unknown) => e)) as ConnectError;
    expect(refused).toBeInstanceOf(ConnectError);
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.rawMessage).toMatch(/has datatype FP32, but application "sum" takes doubles: send FP64/);
    const unknown = (await client.modelMetadata({ name: "nope" }).catch((e: unknown) => e)) as ConnectError;
    expect(unknown.code).toBe(Code.NotFound);
  });

  it("answers each ModelStreamInfer request on the stream, an error for that request alone", async () => {
    const client = createClient(GRPCInferenceService, transport);
    async function* requests(): AsyncIterable<MessageInitShape<typeof ModelInferRequestSchema>> {
      for (let i = 0; i < 5; i++)
        yield { modelName: "sum", id: String(i), inputs: [{ name: "input", datatype: "FP64", shape: [1n], contents: { fp64Contents: [i, i] } }] };
      yield { modelName: "nope", id: "unknown", inputs: [] };
      yield { modelName: "sum", id: "last", inputs: [{ name: "input", datatype: "FP64", shape: [1n, 1n], contents: { fp64Contents: [9] } }] };
    }
    const answers = new Map<string, string>();
    for await (const res of client.modelStreamInfer(requests())) {
      const id = res.inferResponse?.id ?? "";
      answers.set(id, res.errorMessage || String(Buffer.from(res.inferResponse?.rawOutputContents[0] ?? new Uint8Array()).readDoubleLE(0)));
    }
    // Shape [1] of two values is refused: its shape holds one element.
    expect(answers.get("0")).toMatch(/contents.fp64_contents holds 2 elements but its shape holds 1/);
    expect(answers.get("unknown")).toMatch(/model "nope" not found/);
    expect(answers.get("last")).toBe("9");
    expect(answers.size).toBe(7);
  });

  it("counts OIP requests in the gateway's metrics under their own protocols", async () => {
    const text = await metrics.metrics();
    expect(text).toMatch(/clipper_gateway_requests_total\{application="sum",protocol="oip-rest",outcome="answered",code="ok"\} [1-9]/);
    expect(text).toMatch(/clipper_gateway_requests_total\{application="sum",protocol="oip-grpc",outcome="error",code="invalid_argument"\} [1-9]/);
    expect(text).toMatch(/clipper_gateway_requests_total\{application="locked",protocol="oip-rest",outcome="error",code="unauthenticated"\} 1/);
  });
});
