import { join } from "node:path";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PredictionService } from "../gen/clipper/v1/prediction_service_pb.js";
import { exportTracesTo, type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./observability/otlp-receiver.js";
import { postJson, pythonFileModel, repoRoot, TestSystem, waitFor } from "./system.js";

describe("the gateway with the router in its own process (--router in-process)", () => {
  const system = new TestSystem({ routerInProcess: true });

  beforeAll(async () => {
    await system.start();
    await system.deployApp("hello-world", pythonFileModel("sum-model", join(repoRoot, "examples", "sum_model.py")), { sloMicros: 2_000_000n });
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("runs no router service", () => {
    expect(system.pid("router")).toBeUndefined();
  });

  it("answers over REST and gRPC, and takes feedback", async () => {
    const res = await waitFor("a model answer", async () => {
      const r = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: [1.1, 2.2, 3.3] });
      return r.json.default === false ? r : undefined;
    });
    expect(res.json).toMatchObject({ output: 6.6, default: false, models: ["sum-model:1"] });
    const batch = await postJson(`${system.gatewayUrl}/hello-world/predict`, {
      input_batch: [
        [1, 2],
        [3.5, 0],
      ],
    });
    expect((batch.json.batch_predictions as Array<Record<string, unknown>>).map((p) => p.output)).toEqual([3, 3.5]);

    const client = createClient(PredictionService, system.transport(system.address("gateway")));
    const one = await client.predict({ application: "hello-world", input: { value: { case: "doubles", value: { values: [2, 3] } } } });
    expect(one.prediction?.output).toBe("5.0");
    const err = (await client
      .predict({ application: "nope", input: { value: { case: "doubles", value: { values: [1] } } } })
      .catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.NotFound);
    const wrong = await postJson(`${system.gatewayUrl}/hello-world/predict`, { input: ["a"] });
    expect(wrong.status).toBe(400);

    const feedback = await postJson(`${system.gatewayUrl}/hello-world/update`, { input: [1.1, 2.2, 3.3], label: 6.6 });
    expect(feedback.status).toBe(200);
    expect(feedback.json).toEqual({ accepted: true });
  });

  it("keeps one config watch in the gateway's process, shared by the gateway and its router", async () => {
    const registryMetrics = async () => (await fetch(`http://127.0.0.1:${system.metricsPort("registry")}/metrics`)).text();
    // One watch from the gateway's process (the gateway and the router in it share it), one from the container-manager.
    const watchers = await waitFor(
      "the registry's watchers",
      async () => /^clipper_registry_watchers(?:\{[^}]*\})? (\d+)$/m.exec(await registryMetrics())?.[1],
    );
    expect(Number(watchers)).toBe(2);
  });

  it("is ready once the router has its configuration, and serves the router's series on the gateway's /metrics", async () => {
    const ready = await fetch(`${system.gatewayUrl}/readyz`);
    expect(ready.status).toBe(200);
    const text = await (await fetch(system.routerMetricsUrl())).text();
    expect(text).toMatch(/clipper_router_batch_size_count\{[^}]*model="sum-model"[^}]*\} [1-9]/);
    expect(text).toMatch(/clipper_gateway_requests_total\{[^}]*application="hello-world"/);
  });
});

describe("a trace with the router in the gateway's process", () => {
  let receiver: OtlpReceiver;
  let restoreEnv = () => {};
  let system: TestSystem;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    restoreEnv = exportTracesTo(receiver);
    system = new TestSystem({ routerInProcess: true });
    await system.start();
    await system.deployApp("traced", pythonFileModel("sum-model", join(repoRoot, "examples", "sum_model.py")), { sloMicros: 5_000_000n });
  }, 120_000);

  afterAll(async () => {
    await system?.stop();
    await receiver?.close();
    restoreEnv();
  }, 60_000);

  it("chains the gateway's span, the router's batch and the model's span, with no router call between", async () => {
    const res = await waitFor("a model answer", async () => {
      const r = await postJson(`${system.gatewayUrl}/traced/predict`, { input: [1, 2, 3] });
      return r.json.default === false ? r : undefined;
    });
    const queryId = String(res.json.query_id);
    const spans = await waitFor(
      "the whole trace",
      () => {
        const gateway = receiver.spans.find((s) => s.name === "clipper.gateway/predict" && s.attributes["clipper.query_id"] === queryId);
        const trace = gateway ? receiver.spans.filter((s) => s.traceId === gateway.traceId) : [];
        return trace.some((s) => s.name === "clipper.model.v1.ModelService/Predict") ? trace : undefined;
      },
      15_000,
    );
    const byName = (name: string) => spans.find((s) => s.name === name) as ReceivedSpan;
    const gateway = byName("clipper.gateway/predict");
    const batch = byName("clipper.router/batch");
    const model = byName("clipper.model.v1.ModelService/Predict");
    expect(spans.some((s) => s.name === "clipper.v1.QueryService/Query")).toBe(false);
    expect(gateway.parentSpanId).toBe("");
    expect(batch.service).toBe("clipper-gateway");
    expect(batch.parentSpanId).toBe(gateway.spanId);
    expect(model.parentSpanId).toBe(batch.spanId);
    // What the router's Query span carries in the other layout, the gateway's span carries here.
    expect(gateway.attributes).toMatchObject({ "clipper.application": "traced", "clipper.model": "sum-model", "clipper.default": false });
    expect(gateway.events.map((e) => e.name)).toContain("batch dispatched");
  });
});
