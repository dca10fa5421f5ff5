import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { PredictionService, PredictRequestSchema, PredictResponseSchema } from "../../gen/clipper/v1/prediction_service_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { type RunningRouter, startRouter } from "../router/index.js";
import { type ConfigWatcher, createLogger, prom, type RunningGrpcServer, registration, startGrpcServer, watchConfig } from "../shared/index.js";
import { startSnapshotRegistry } from "../shared/testing/snapshot-registry.js";
import { connectRouter, type RouterLink, type RunningGateway, startGateway } from "./index.js";

const SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO";
const MAX_BODY_BYTES = 64 * 1024;
const logger = createLogger({ service: "test", level: "silent" });

/** A model replica: sums each input; an input starting with -1 fails alone; `delayMs` makes it slow. */
async function startModel(delayMs: number): Promise<RunningGrpcServer> {
  return startGrpcServer({
    port: 0,
    services: [
      registration(ModelService, {
        async predict(req, ctx) {
          if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs, ctx.signal));
          const inputs = req.inputs;
          if (inputs === undefined) return { outputs: [] };
          let offset = 0;
          return {
            outputs: inputs.lengths.map((n) => {
              const values = inputs.doubles.slice(offset, offset + n);
              offset += n;
              if (values[0] === -1) return { result: { case: "error" as const, value: "negative input" } };
              return { result: { case: "value" as const, value: String(values.reduce((a, b) => a + b, 0)) } };
            }),
          };
        },
      }),
    ],
  });
}

describe("gateway and router", () => {
  let sumModel: RunningGrpcServer;
  let slowModel: RunningGrpcServer;
  let registry: RunningGrpcServer;
  let router: RunningRouter;
  let gateway: RunningGateway;
  let config: ConfigWatcher;
  let routerLink: RouterLink;
  let base: string;
  const routerMetrics = new prom.Registry();

  beforeAll(async () => {
    sumModel = await startModel(0);
    slowModel = await startModel(2000);
    const replica = (model: string, endpoint: string) => ({
      modelName: model,
      modelVersion: "1",
      replicas: [{ id: `${model}-0`, modelName: model, modelVersion: "1", endpoint, state: ReplicaState.READY }],
    });
    registry = await startSnapshotRegistry({
      revision: 1n,
      applications: [
        { name: "sum", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n, linkedModels: ["sum-model"] },
        { name: "slow", inputType: InputType.DOUBLES, defaultOutput: '"fallback"', sloMicros: 50_000n, linkedModels: ["slow-model"] },
        { name: "lonely", inputType: InputType.STRINGS, defaultOutput: "none", sloMicros: 50_000n },
        { name: "patient", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 10_000_000n, linkedModels: ["slow-model"] },
      ],
      models: [
        { name: "sum-model", version: "1", inputType: InputType.DOUBLES, maxBatchSize: 2 },
        { name: "slow-model", version: "1", inputType: InputType.DOUBLES },
      ],
      currentVersions: [
        { modelName: "sum-model", version: "1" },
        { modelName: "slow-model", version: "1" },
      ],
      replicaSets: [replica("sum-model", sumModel.address), replica("slow-model", slowModel.address)],
    });
    router = await startRouter({
      host: "127.0.0.1",
      port: 0,
      registry: registry.address,
      limits: { maxBatch: 1000, maxInputSize: 1000 },
      maxWaitMs: 10_000,
      logger,
      metrics: routerMetrics,
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
      metrics: new prom.Registry(),
    });
    base = `http://127.0.0.1:${gateway.port}`;
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`${base}/readyz`)).status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("the gateway never became ready");
  });

  afterAll(async () => {
    await gateway?.close();
    routerLink?.close();
    config?.close();
    await router?.close();
    await Promise.all([registry?.close(100), sumModel?.close(100), slowModel?.close(100)]);
  });

  const post = (urlPath: string, body: string) => fetch(`${base}${urlPath}`, { method: "POST", body, headers: { "content-type": "application/json" } });

  it("cancels a REST query whose client goes away: the router drops its batch and frees the replica", async () => {
    const inFlight = async () =>
      (await routerMetrics.getSingleMetric("clipper_router_inflight_batches")?.get())?.values.find((v) => v.labels.model === "slow-model")?.value ?? 0;
    const req = http.request(`${base}/patient/predict`, { method: "POST", headers: { "content-type": "application/json" } });
    req.on("error", () => {});
    req.end(JSON.stringify({ input: [1] }));
    await expect.poll(inFlight).toBe(1);
    req.destroy();
    // The model would answer after 2 s; the batch is given up as soon as its only query has gone.
    await expect.poll(inFlight, { timeout: 1000 }).toBe(0);
  });

  it("answers REST predictions on a kept-alive connection, with increasing query ids", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await post("/sum/predict", JSON.stringify({ input: [1, 2, i] }));
      expect(res.status).toBe(200);
      const body = (await res.json()) as { query_id: number; output: unknown; default: boolean };
      expect(body).toMatchObject({ output: 3 + i, default: false });
      expect(body).not.toHaveProperty("default_explanation");
      ids.push(body.query_id);
    }
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(5);
  });

  it("answers a REST batch, split by the model's max_batch_size, in order", async () => {
    const res = await post("/sum/predict", JSON.stringify({ input_batch: [[1], [2], [3], [-1], [5]] }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { batch_predictions: Array<{ output: unknown; default: boolean; default_explanation?: string }> };
    expect(body.batch_predictions.map((p) => p.output)).toEqual([1, 2, 3, -1, 5]);
    expect(body.batch_predictions[3]).toMatchObject({ default: true, default_explanation: "Model sum-model:1 failed on this input: negative input" });
  });

  it.each([
    ["malformed JSON", "/sum/predict", "{nope", 400, "malformed JSON", undefined],
    ["a wrong-typed element", "/sum/predict", '{"input":[1,2,"x"]}', 400, "invalid request", "input[2] is not a number"],
    ["a missing input", "/sum/predict", '{"inputs":[1]}', 400, "invalid request", 'input is missing: send "input" or "input_batch"'],
    ["an empty batch", "/sum/predict", '{"input_batch":[]}', 400, "invalid request", "input_batch is empty: send at least one input"],
    [
      "a ragged batch",
      "/sum/predict",
      '{"input_batch":[[1,2],[3]]}',
      400,
      "invalid request",
      "input_batch[1] has 1 values but input_batch[0] has 2: all inputs of a batch must have the same length",
    ],
    ["an unknown application", "/nope/predict", '{"input":[1]}', 404, "not found", 'application "nope" not found'],
    ["an unknown path", "/sum/explain", "{}", 404, "not found", "no route for POST /sum/explain"],
  ])("answers %s with the documented status and message", async (_case, urlPath, body, status, error, cause) => {
    const res = await post(urlPath, body);
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: string; cause: string };
    expect(json.error).toBe(error);
    if (cause !== undefined) expect(json.cause).toBe(cause);
    else expect(json.cause).not.toBe("");
  });

  it("answers 405 for a wrong method and 413 for a body over the limit", async () => {
    const get = await fetch(`${base}/sum/predict`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    const big = JSON.stringify({ input: new Array(MAX_BODY_BYTES).fill(1) });
    const res = await post("/sum/predict", big);
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: "request body too large", cause: `the body exceeds the limit of ${MAX_BODY_BYTES} bytes` });
  });

  it("stops reading a chunked body once it passes the limit", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${base}/sum/predict`, { method: "POST", headers: { "transfer-encoding": "chunked" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on("error", reject);
      req.write(`{"input":[${"1,".repeat(MAX_BODY_BYTES / 2)}`);
    });
    expect(status).toBe(413);
  });

  it("parses a body that spans many TCP segments and maps router errors to REST statuses", async () => {
    const big = await post("/sum/predict", JSON.stringify({ input: new Array(12_000).fill(1.5) }));
    expect(big.status).toBe(400);
    expect(((await big.json()) as { cause: string }).cause).toBe("inputs.lengths[0] is 12000, more than the limit of 1000");
    const pinned = await post("/sum/predict", JSON.stringify({ input: [1], version: "9" }));
    expect(pinned.status).toBe(404);
    expect(((await pinned.json()) as { cause: string }).cause).toBe('model sum-model has no version "9"');
  });

  it("answers the application's default when the model misses the SLO, or when no model is linked", async () => {
    const slow = (await (await post("/slow/predict", '{"input":[1]}')).json()) as Record<string, unknown>;
    expect(slow).toMatchObject({ output: "fallback", default: true, default_explanation: SLO_EXPLANATION });
    const lonely = (await (await post("/lonely/predict", '{"input":"hi"}')).json()) as Record<string, unknown>;
    expect(lonely).toMatchObject({ output: "none", default: true, default_explanation: "No connected models found for query" });
  });

  it("accepts feedback over REST", async () => {
    const res = await post("/sum/update", JSON.stringify({ uid: 1, input: [1, 2], label: 3 }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: true });
  });

  it("serves /healthz, /readyz and /metrics with per-application counters", async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('clipper_gateway_requests_total{application="sum",protocol="rest",outcome="answered",code="ok"}');
    expect(text).toContain('clipper_gateway_requests_total{application="unknown",protocol="rest",outcome="error",code="not_found"}');
    expect(text).toContain("clipper_gateway_request_duration_seconds_bucket");
  });

  it("answers a stock grpc-js client over h2c on the same port", async () => {
    const client = new grpc.Client(`127.0.0.1:${gateway.port}`, grpc.credentials.createInsecure());
    try {
      const call = (input: MessageInitShape<typeof PredictRequestSchema>) =>
        new Promise<ReturnType<typeof fromBinary<typeof PredictResponseSchema>>>((resolve, reject) =>
          client.makeUnaryRequest(
            "/clipper.v1.PredictionService/Predict",
            (m: MessageInitShape<typeof PredictRequestSchema>) => Buffer.from(toBinary(PredictRequestSchema, create(PredictRequestSchema, m))),
            (b: Buffer) => fromBinary(PredictResponseSchema, b),
            input,
            new grpc.Metadata(),
            { deadline: Date.now() + 5000 },
            (err, res) => (err || !res ? reject(err) : resolve(res)),
          ),
        );
      const res = await call({ application: "sum", input: { value: { case: "doubles", value: { values: [4, 5] } } } });
      expect(res.prediction).toMatchObject({ output: "9", default: false });
      const err = (await call({ application: "sum", input: { value: { case: "string", value: "x" } } }).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toBe("input holds string but the application expects doubles");
      const missing = (await call({ application: "nope", input: { value: { case: "doubles", value: { values: [1] } } } }).catch(
        (e: unknown) => e,
      )) as grpc.ServiceError;
      expect(missing.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
  });

  it("answers the Connect protocol over HTTP/1.1, batches included", async () => {
    const client = createClient(PredictionService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    const res = await client.predict({ application: "sum", input: { value: { case: "doubles", value: { values: [1, 1] } } } });
    expect(res.prediction?.output).toBe("2");
    const batch = await client.predictBatch({ application: "sum", inputs: { type: InputType.DOUBLES, lengths: [1, 2], doubles: [1, 2, 3] } });
    expect(batch.predictions.map((p) => p.output)).toEqual(["1", "5"]);
    const slow = await client.predict({ application: "slow", input: { value: { case: "doubles", value: { values: [1] } } } }, { timeoutMs: 5000 });
    expect(slow.prediction).toMatchObject({ default: true, defaultExplanation: SLO_EXPLANATION });
    const err = (await client
      .predictBatch({ application: "sum", inputs: { type: InputType.INTS, lengths: [1], ints: [1] } })
      .catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("inputs.type is ints but the application expects doubles");
  });

  describe("a client's bytes that are not a valid message", () => {
    // A PredictRequest cut short: field 1 (application) announces 5 bytes and carries 1.
    const truncated = new Uint8Array([0x0a, 0x05, 0x73]);
    const connectPost = (body: Uint8Array) =>
      fetch(`${base}/clipper.v1.PredictionService/Predict`, { method: "POST", body, headers: { "content-type": "application/proto" } });
    const grpcWebPost = (message: Uint8Array) => {
      const envelope = new Uint8Array(5 + message.length);
      new DataView(envelope.buffer).setUint32(1, message.length);
      envelope.set(message, 5);
      return fetch(`${base}/clipper.v1.PredictionService/Predict`, {
        method: "POST",
        body: envelope,
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      });
    };
    /** grpc-status and grpc-message of a gRPC-Web answer: from its headers (trailers-only) or its trailer frame. */
    const grpcWebStatus = async (res: Response) => {
      const fromHeaders = res.headers.get("grpc-status");
      if (fromHeaders !== null) return { status: fromHeaders, message: decodeURIComponent(res.headers.get("grpc-message") ?? "") };
      const bytes = new Uint8Array(await res.arrayBuffer());
      let at = 0;
      while (at + 5 <= bytes.length) {
        const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
        if (((bytes[at] ?? 0) & 0x80) !== 0) {
          const text = new TextDecoder().decode(bytes.subarray(at + 5, at + 5 + length));
          const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "mi").exec(text)?.[1]?.trim() ?? "";
          return { status: field("grpc-status"), message: decodeURIComponent(field("grpc-message")) };
        }
        at += 5 + length;
      }
      return { status: "", message: "" };
    };

    it("answers Connect with 400 invalid_argument naming the message, not 500", async () => {
      const res = await connectPost(truncated);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).toBe("invalid_argument");
      expect(body.message).toMatch(/^the request is not a valid clipper.v1.PredictRequest message: /);
      // A valid message on the same connection is answered as usual.
      const ok = await connectPost(
        toBinary(PredictRequestSchema, create(PredictRequestSchema, { application: "sum", input: { value: { case: "doubles", value: { values: [2] } } } })),
      );
      expect(ok.status).toBe(200);
      expect(fromBinary(PredictResponseSchema, new Uint8Array(await ok.arrayBuffer())).prediction?.output).toBe("2");
    });

    it("answers gRPC-Web with INVALID_ARGUMENT naming the message, not INTERNAL", async () => {
      const res = await grpcWebPost(truncated);
      const { status, message } = await grpcWebStatus(res);
      expect(status).toBe(String(grpc.status.INVALID_ARGUMENT));
      expect(message).toMatch(/^the request is not a valid clipper.v1.PredictRequest message: /);
      const valid = toBinary(
        PredictRequestSchema,
        create(PredictRequestSchema, { application: "sum", input: { value: { case: "doubles", value: { values: [3] } } } }),
      );
      expect((await grpcWebStatus(await grpcWebPost(valid))).status).toBe("0");
    });

    it("answers native gRPC with INVALID_ARGUMENT, as before", async () => {
      const client = new grpc.Client(`127.0.0.1:${gateway.port}`, grpc.credentials.createInsecure());
      try {
        const err = await new Promise<grpc.ServiceError>((resolve) =>
          client.makeUnaryRequest(
            "/clipper.v1.PredictionService/Predict",
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.from(truncated),
            new grpc.Metadata(),
            { deadline: Date.now() + 5000 },
            (e) => resolve(e as grpc.ServiceError),
          ),
        );
        expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(err.details).toMatch(/^the request is not a valid clipper.v1.PredictRequest message: /);
      } finally {
        client.close();
      }
    });
  });

  describe("one check of input values on every protocol", () => {
    const grpcCall = <T>(method: string, schema: typeof PredictRequestSchema, input: MessageInitShape<typeof PredictRequestSchema>) =>
      new Promise<grpc.ServiceError | T>((resolve) => {
        const client = new grpc.Client(`127.0.0.1:${gateway.port}`, grpc.credentials.createInsecure());
        client.makeUnaryRequest(
          method,
          (m: MessageInitShape<typeof PredictRequestSchema>) => Buffer.from(toBinary(schema, create(schema, m))),
          (b: Buffer) => b as unknown as T,
          input,
          new grpc.Metadata(),
          { deadline: Date.now() + 5000 },
          (err, res) => {
            client.close();
            resolve(err ?? (res as T));
          },
        );
      });
    const connectJson = (method: string, body: string | Uint8Array) =>
      fetch(`${base}/clipper.v1.PredictionService/${method}`, { method: "POST", body, headers: { "content-type": "application/json" } });
    const bytes = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));

    it.each([
      ["NaN", Number.NaN, "is NaN: numbers must be finite"],
      ["Infinity", Number.POSITIVE_INFINITY, "is Infinity: numbers must be finite"],
      ["-Infinity", Number.NEGATIVE_INFINITY, "is -Infinity: numbers must be finite"],
    ])("refuses %s over gRPC, Connect and REST, naming the value", async (_name, value, problem) => {
      const predict = await grpcCall<Buffer>("/clipper.v1.PredictionService/Predict", PredictRequestSchema, {
        application: "sum",
        input: { value: { case: "doubles", value: { values: [1, value] } } },
      });
      expect((predict as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((predict as grpc.ServiceError).details).toBe(`input.doubles.values[1] ${problem}`);

      const client = createClient(PredictionService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
      const batch = (await client
        .predictBatch({ application: "sum", inputs: { type: InputType.DOUBLES, lengths: [1, 2], doubles: [1, 2, value] } })
        .catch((e: unknown) => e)) as ConnectError;
      expect(batch.code).toBe(Code.InvalidArgument);
      expect(batch.rawMessage).toBe(`inputs.doubles[2] ${problem} (value 1 of input 1)`);
      const single = (await client
        .predict({ application: "sum", input: { value: { case: "doubles", value: { values: [value] } } } })
        .catch((e: unknown) => e)) as ConnectError;
      expect(single.rawMessage).toBe(`input.doubles.values[0] ${problem}`);

      // Connect's JSON spells them as strings.
      const json = await connectJson("Predict", JSON.stringify({ application: "sum", input: { doubles: { values: [String(value)] } } }));
      expect(json.status).toBe(400);
      expect(((await json.json()) as { message: string }).message).toBe(`input.doubles.values[0] ${problem}`);
    });

    it("refuses Infinity over REST (1e999 in JSON) with the same words", async () => {
      const res = await post("/sum/predict", '{"input":[1,1e999]}');
      expect(res.status).toBe(400);
      expect(((await res.json()) as { cause: string }).cause).toBe("input[1] is Infinity: numbers must be finite");
    });

    it("refuses invalid UTF-8 in a strings input, naming it, on REST and Connect JSON (not U+FFFD), and keeps a real U+FFFD", async () => {
      const lonely = (body: Uint8Array | string) => fetch(`${base}/lonely/predict`, { method: "POST", body, headers: { "content-type": "application/json" } });
      const cause = async (res: Response) => {
        expect(res.status).toBe(400);
        return ((await res.json()) as { cause: string }).cause;
      };
      const INVALID = "is not valid UTF-8 (it holds invalid bytes or a lone surrogate escape)";
      expect(await cause(await lonely(bytes('{"input":"a', [0xff], 'b"}')))).toBe(`input ${INVALID}`);
      expect(await cause(await lonely(bytes('{"input_batch":["fine","x', [0xc3, 0x28], '"]}')))).toBe(`input_batch[1] ${INVALID}`);
      expect(await cause(await lonely('{"input":"\\ud800"}'))).toBe(`input ${INVALID}`);
      // Even right after an escaped high surrogate the broken byte is not taken for the pair's second half.
      expect(await cause(await lonely(bytes('{"input":"\\ud83d', [0xed, 0xb8, 0x80], '"}')))).toBe(`input ${INVALID}`);
      expect(await cause(await lonely(bytes('{"input":"ok","uid":"u', [0xfe], '"}')))).toBe(`uid ${INVALID}`);
      // U+FFFD itself, well encoded, is a character like any other.
      const replacement = await lonely(JSON.stringify({ input: "a\uFFFDb" }));
      expect(replacement.status).toBe(200);

      const single = await connectJson("Predict", bytes('{"application":"lonely","input":{"string":"a', [0xff], '"}}'));
      expect(single.status).toBe(400);
      // protobuf-es refuses the lone surrogates the decoder kept, naming the field.
      expect(((await single.json()) as { message: string }).message).toBe(
        "cannot decode field clipper.v1.Input.string from JSON: expected string: invalid UTF8",
      );
      const batch = await connectJson(
        "PredictBatch",
        bytes('{"application":"lonely","inputs":{"type":"INPUT_TYPE_STRINGS","strings":["ok","b', [0x80], '"]}}'),
      );
      expect(batch.status).toBe(400);
      expect(((await batch.json()) as { message: string }).message).toMatch(/^cannot decode field clipper.common.v1.Inputs.strings from JSON: .*invalid UTF8/);
      const ok = await connectJson("Predict", JSON.stringify({ application: "lonely", input: { string: "a\uFFFDb" } }));
      expect(ok.status).toBe(200);
    });

    it("refuses invalid UTF-8 in a binary message as not a valid message, over gRPC and Connect", async () => {
      // PredictRequest{application: "lonely", input: {string: "a\xff"}}: field 2 (input) holding field 5 (string).
      const message = bytes([0x0a, 6], "lonely", [0x12, 4, 0x2a, 2, 0x61, 0xff]);
      const viaConnect = await fetch(`${base}/clipper.v1.PredictionService/Predict`, {
        method: "POST",
        body: message,
        headers: { "content-type": "application/proto" },
      });
      expect(viaConnect.status).toBe(400);
      expect(((await viaConnect.json()) as { message: string }).message).toMatch(/^the request is not a valid clipper.v1.PredictRequest message: .*utf-8/i);
      const client = new grpc.Client(`127.0.0.1:${gateway.port}`, grpc.credentials.createInsecure());
      try {
        const err = await new Promise<grpc.ServiceError>((resolve) =>
          client.makeUnaryRequest(
            "/clipper.v1.PredictionService/Predict",
            (b: Buffer) => b,
            (b: Buffer) => b,
            message,
            new grpc.Metadata(),
            { deadline: Date.now() + 5000 },
            (e) => resolve(e as grpc.ServiceError),
          ),
        );
        expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(err.details).toMatch(/^the request is not a valid clipper.v1.PredictRequest message: .*utf-8/i);
      } finally {
        client.close();
      }
    });
  });

  it("lists the services through gRPC server reflection on the same port", async () => {
    const require = createRequire(import.meta.url);
    const protoLoader = require("@grpc/proto-loader") as typeof import("@grpc/proto-loader");
    const protoPath = path.join(path.dirname(require.resolve("@grpc/reflection")), "../proto/grpc/reflection/v1/reflection.proto");
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath)) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(`127.0.0.1:${gateway.port}`, grpc.credentials.createInsecure());
    try {
      const names = await new Promise<string[]>((resolve, reject) => {
        type ReflectionResponse = { listServicesResponse?: { service: Array<{ name: string }> } };
        const stream = (client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse> }).ServerReflectionInfo();
        stream.on("data", (res: ReflectionResponse) => {
          resolve(res.listServicesResponse?.service.map((s) => s.name) ?? []);
          stream.end();
        });
        stream.on("error", reject);
        stream.write({ listServices: "" });
      });
      expect(names).toEqual(expect.arrayContaining(["clipper.v1.PredictionService", "grpc.health.v1.Health"]));
    } finally {
      client.close();
    }
  });
});
