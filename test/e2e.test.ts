import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { PredictionService } from "../gen/clipper/v1/prediction_service_pb.js";
import { postJson, pythonFileModel, repoRoot, TestSystem, waitFor } from "./system.js";

/** grpcurl, a client that knows nothing of this project; .ci/run installs it into .tools/bin. */
const grpcurl = [process.env.GRPCURL, join(repoRoot, ".tools", "bin", "grpcurl")].find((p) => p !== undefined && existsSync(p));

describe("end to end on the embedded store, with real Python model containers", () => {
  const system = new TestSystem();

  beforeAll(async () => {
    await system.start();
    const mgmt = system.management();
    await mgmt.createApplication({ name: "hello-world", inputType: InputType.DOUBLES, defaultOutput: "-1.0", sloMicros: 2_000_000n });
    await system.deploy(pythonFileModel("sum-model", join(repoRoot, "examples", "sum_model.py")));
    await mgmt.linkModel({ application: "hello-world", modelName: "sum-model" });
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("answers the quickstart query over REST", async () => {
    const res = await waitFor("a model answer", async () => {
      const r = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [1.1, 2.2, 3.3] });
      return r.json.default === false ? r : undefined;
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ output: 6.6, default: false });
    expect(typeof res.json.query_id).toBe("number");
  });

  it("answers a batch over REST", async () => {
    const res = await postJson(`${system.gatewayUrl}/hello-world/predict`, {
      input_batch: [
        [1, 2],
        [3.5, 0],
        [0.25, 0.5],
      ],
    });
    expect(res.status).toBe(200);
    const preds = res.json.batch_predictions as Array<Record<string, unknown>>;
    expect(preds.map((p) => p.output)).toEqual([3, 3.5, 0.75]);
  });

  it("answers Predict and PredictBatch over gRPC on the gateway port", async () => {
    const client = createClient(PredictionService, system.transport(system.address("gateway")));
    const one = await client.predict({ application: "hello-world", input: { value: { case: "doubles", value: { values: [1.1, 2.2, 3.3] } } } });
    expect(one.prediction?.output).toBe("6.6");
    const batch = await client.predictBatch({ application: "hello-world", inputs: { type: InputType.DOUBLES, lengths: [2, 2], doubles: [1, 2, 3, 4] } });
    expect(batch.predictions.map((p) => p.output)).toEqual(["3.0", "7.0"]);
    const err = (await client
      .predict({ application: "nope", input: { value: { case: "doubles", value: { values: [1] } } } })
      .catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.NotFound);
  });

  it("answers Predict over Connect and gRPC-Web on HTTP/1.1", async () => {
    for (const transport of [
      createConnectTransport({ baseUrl: system.gatewayUrl, httpVersion: "1.1" }),
      createGrpcWebTransport({ baseUrl: system.gatewayUrl, httpVersion: "1.1" }),
    ]) {
      const client = createClient(PredictionService, transport);
      const res = await client.predict({ application: "hello-world", input: { value: { case: "doubles", value: { values: [2, 3] } } } });
      expect(res.prediction?.output).toBe("5.0");
    }
  });

  // Skipped only outside CI when grpcurl is not installed; CI always has it.
  it.skipIf(grpcurl === undefined && !process.env.CI)("lets grpcurl discover and call Predict through server reflection", () => {
    const run = (...args: string[]) => execFileSync(grpcurl ?? "grpcurl", ["-plaintext", ...args], { encoding: "utf8", timeout: 20_000 });
    const services = run(system.address("gateway"), "list");
    expect(services).toContain("clipper.v1.PredictionService");
    expect(services).toContain("grpc.health.v1.Health");
    const answer = JSON.parse(
      run(
        "-d",
        JSON.stringify({ application: "hello-world", input: { doubles: { values: [1.1, 2.2, 3.3] } } }),
        system.address("gateway"),
        "clipper.v1.PredictionService/Predict",
      ),
    ) as { prediction: { output: string } };
    expect(answer.prediction.output).toBe("6.6");
  });

  it("answers the application's default when the model misses the SLO", async () => {
    const mgmt = system.management();
    await mgmt.createApplication({ name: "slow-app", inputType: InputType.DOUBLES, defaultOutput: "-1.0", sloMicros: 200_000n });
    await system.deploy(pythonFileModel("slow-model", join(repoRoot, "test", "fixtures", "slow_model.py")));
    await mgmt.linkModel({ application: "slow-app", modelName: "slow-model" });
    const started = Date.now();
    const res = await postJson(`${system.gatewayUrl}/slow-app/predict`, { input: [1] });
    expect(Date.now() - started).toBeLessThan(900);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ output: -1, default: true });
    expect(String(res.json.default_explanation)).toContain("within the specified latency SLO");
  });

  it("replaces a model container killed with SIGKILL", async () => {
    const mgmt = system.management();
    await mgmt.createApplication({ name: "pid-app", inputType: InputType.DOUBLES, defaultOutput: "none", sloMicros: 2_000_000n });
    await system.deploy(pythonFileModel("pid-model", join(repoRoot, "test", "fixtures", "pid_model.py")));
    await mgmt.linkModel({ application: "pid-app", modelName: "pid-model" });
    const pidOf = async () => {
      const r = await postJson(`${system.gatewayUrl}/pid-app/predict`, { input: [1] });
      return r.json.default === false ? Number(r.json.output) : undefined;
    };
    const first = await waitFor("the first replica's pid", pidOf);
    process.kill(first, "SIGKILL");
    const second = await waitFor(
      "a replacement replica",
      async () => {
        const pid = await pidOf().catch(() => undefined);
        return pid !== undefined && pid !== first ? pid : undefined;
      },
      60_000,
    );
    expect(second).not.toBe(first);
    const replicas = await system.containerManager().listModelReplicas({ modelName: "pid-model" });
    expect(replicas.replicas.some((r) => r.restarts >= 1)).toBe(true);
  }, 90_000);

  it("keeps its configuration across a registry restart and keeps serving meanwhile", async () => {
    const port = await system.stopService("registry");
    const during = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [1, 1] });
    expect(during.json).toMatchObject({ output: 2, default: false });
    await system.startService("registry", port);
    const app = await waitFor("the registry back", () => system.management().getApplication({ name: "hello-world" }));
    expect(app.application?.linkedModels).toEqual(["sum-model"]);
    const models = await system.management().listModels({ name: "sum-model" });
    expect(models.models.map((m) => m.version)).toEqual(["1"]);
  }, 60_000);

  it("changes an application's cache and a model's batching knobs from the CLI, live", async () => {
    const cli = (...args: string[]) =>
      execFileSync(process.execPath, [join(repoRoot, "cli", "clipper.mjs"), ...args, "--registry", system.address("registry")], {
        encoding: "utf8",
        timeout: 30_000,
      });
    expect(cli("app", "update", "hello-world", "--cache", "on")).toContain("cache on");
    expect(cli("model", "batching", "sum-model", "1", "--max-batch-size", "8", "--max-wait-micros", "1000")).toContain("max batch 8");
    const app = await system.management().getApplication({ name: "hello-world" });
    expect(app.application?.cacheEnabled).toBe(true);
    const model = await system.management().getModel({ name: "sum-model", version: "1" });
    expect(model.model).toMatchObject({ maxBatchSize: 8, batching: { maxWaitMicros: 1000 } });
    const first = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [4, 5] });
    const again = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [4, 5] });
    expect(first.json).toMatchObject({ output: 9, default: false });
    expect(again.json).toMatchObject({ output: 9, default: false });
    expect(() => cli("app", "update", "hello-world", "--cache", "maybe")).toThrow(/must be on or off/);
    cli("app", "update", "hello-world", "--cache", "off");
  });

  describe("bad input gets the documented error and the system keeps serving", () => {
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ["malformed JSON", "hello-world/predict", '{"input": [1.1,', 400, /JSON/i],
      ["wrong input type", "hello-world/predict", { input: ["a", "b"] }, 400, /input/],
      ["missing input", "hello-world/predict", { nothing: 1 }, 400, /input/],
      ["unknown application", "no-such-app/predict", { input: [1] }, 404, /no-such-app/],
      ["unknown path", "hello-world/nowhere", { input: [1] }, 404, /./],
      ["empty batch", "hello-world/predict", { input_batch: [] }, 400, /input_batch/],
      ["ragged batch", "hello-world/predict", { input_batch: [[1, 2], 3] }, 400, /input_batch\[1\]/],
    ];
    for (const [what, path, body, status, cause] of cases) {
      it(`${what} → ${status}`, async () => {
        const res = await postJson(`${system.gatewayUrl}/${path}`, body);
        expect(res.status).toBe(status);
        expect(typeof res.json.error).toBe("string");
        expect(`${res.json.error} ${res.json.cause}`).toMatch(cause);
      });
    }

    it("oversized body → 413", async () => {
      const huge = JSON.stringify({ input: new Array(3_000_000).fill(1.5) });
      const res = await postJson(`${system.gatewayUrl}/hello-world/predict`, huge);
      expect(res.status).toBe(413);
    });

    it("invalid names are refused with INVALID_ARGUMENT naming the problem", async () => {
      const err = (await system
        .management()
        .createApplication({ name: "Hello_World", inputType: InputType.DOUBLES, defaultOutput: "x", sloMicros: 1000n })
        .catch((e: unknown) => e)) as ConnectError;
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/DNS-1123/);
    });

    it("still serves after all of it", async () => {
      const res = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [2, 2] });
      expect(res.json).toMatchObject({ output: 4, default: false });
    });
  });
});
