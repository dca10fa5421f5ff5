// The real services with tracing on, exporting to a receiver of the test's own,
// a real Python model container, and /metrics scraped after a known workload.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePrometheusText, type Sample } from "../../cli/top.js";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { postJson, pythonFileModel, repoRoot, TestSystem, waitFor } from "../system.js";
import { exportTracesTo, type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./otlp-receiver.js";

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return parsePrometheusText(await res.text());
}

/** The sum of the samples named `name` whose labels include `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

describe("observability of the real services", () => {
  let receiver: OtlpReceiver;
  let restoreEnv = () => {};
  let system: TestSystem;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    restoreEnv = exportTracesTo(receiver);
    system = new TestSystem();
    await system.start();
    const mgmt = system.management();
    await mgmt.createApplication({ name: "traced", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n, cacheEnabled: true });
    await mgmt.createApplication({ name: "counted", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n });
    await mgmt.createApplication({ name: "unlinked", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 1_000_000n });
    await system.deploy(pythonFileModel("sum-model", join(repoRoot, "examples", "sum_model.py")));
    await mgmt.linkModel({ application: "traced", modelName: "sum-model" });
    await mgmt.linkModel({ application: "counted", modelName: "sum-model" });
    // The router answers once it has seen the ready replica.
    await waitFor("a model answer", async () => {
      const r = await postJson(`${system.gatewayUrl}/counted/predict`, { input: [0.5] });
      return r.json.default === false ? r : undefined;
    });
  }, 90_000);

  afterAll(async () => {
    await system?.stop();
    await receiver?.close();
    restoreEnv();
  }, 60_000);

  /** The spans of the trace the gateway span with this query id belongs to, once the model's span has arrived. */
  async function traceOf(queryId: number, wantModelSpan: boolean): Promise<ReceivedSpan[]> {
    return waitFor(
      `the trace of query ${queryId}`,
      () => {
        const gateway = receiver.spans.find((s) => s.name === "clipper.gateway/predict" && s.attributes["clipper.query_id"] === String(queryId));
        if (gateway === undefined) return undefined;
        const spans = receiver.spans.filter((s) => s.traceId === gateway.traceId);
        const router = spans.find((s) => s.name === "clipper.v1.QueryService/Query");
        if (router === undefined || router.attributes["clipper.inputs"] === undefined) return undefined;
        if (wantModelSpan && !spans.some((s) => s.name === "clipper.model.v1.ModelService/Predict" && s.service === "clipper-model-sum-model"))
          return undefined;
        return spans;
      },
      15_000,
    );
  }

  it("follows one prediction from the gateway through the router to the Python model", async () => {
    const res = await postJson(`${system.gatewayUrl}/traced/predict`, { input: [1, 2, 3] });
    expect(res.json).toMatchObject({ output: 6, default: false });
    const spans = await traceOf(res.json.query_id as number, true);
    const byName = (name: string) => spans.find((s) => s.name === name) as ReceivedSpan;
    const gateway = byName("clipper.gateway/predict");
    const router = byName("clipper.v1.QueryService/Query");
    const batch = byName("clipper.router/batch");
    const model = byName("clipper.model.v1.ModelService/Predict");
    // The chain: gateway → (its client call) router server span → batch → model container.
    expect(gateway.service).toBe("clipper-gateway");
    expect(gateway.parentSpanId).toBe("");
    expect(router.service).toBe("clipper-router");
    expect(router.parentSpanId).toBe(gateway.spanId);
    expect(batch.parentSpanId).toBe(router.spanId);
    expect(model.parentSpanId).toBe(batch.spanId);
    expect(gateway.attributes).toMatchObject({ "clipper.application": "traced", "clipper.default": false });
    expect(router.attributes).toMatchObject({
      "clipper.application": "traced",
      "clipper.model": "sum-model",
      "clipper.model_version": "1",
      "clipper.cache_hit": false,
      "clipper.default": false,
    });
    expect(router.events.map((e) => e.name)).toContain("batch dispatched");
    expect(batch.attributes).toMatchObject({ "clipper.model": "sum-model", "clipper.model_version": "1", "clipper.batch_size": 1 });
    expect(model.attributes).toMatchObject({ "clipper.model": "sum-model", "clipper.model_version": "1", "clipper.batch_size": 1, "clipper.outcome": "ok" });
  });

  it("marks a cache hit and a default's reason on the router span", async () => {
    await postJson(`${system.gatewayUrl}/traced/predict`, { input: [4, 5] });
    const cached = await postJson(`${system.gatewayUrl}/traced/predict`, { input: [4, 5] });
    expect(cached.json).toMatchObject({ output: 9, default: false });
    const hit = (await traceOf(cached.json.query_id as number, false)).find((s) => s.name === "clipper.v1.QueryService/Query");
    expect(hit?.attributes).toMatchObject({ "clipper.cache_hit": true, "clipper.default": false });
    expect((await traceOf(cached.json.query_id as number, false)).some((s) => s.name === "clipper.router/batch")).toBe(false);

    const fallback = await postJson(`${system.gatewayUrl}/unlinked/predict`, { input: [1] });
    expect(fallback.json).toMatchObject({ default: true });
    const router = (await traceOf(fallback.json.query_id as number, false)).find((s) => s.name === "clipper.v1.QueryService/Query");
    expect(router?.attributes).toMatchObject({ "clipper.application": "unlinked", "clipper.default": true, "clipper.default_reason": "no_model" });
  });

  it("counts a known workload in the gateway's, router's and model's /metrics", async () => {
    const gatewayUrl = `${system.gatewayUrl}/metrics`;
    const routerUrl = `http://127.0.0.1:${system.metricsPort("router")}/metrics`;
    const managerUrl = `http://127.0.0.1:${system.metricsPort("container-manager")}/metrics`;
    const info = (await scrape(managerUrl)).find((s) => s.name === "clipper_replica_info" && s.labels.model === "sum-model");
    expect(info?.labels.metrics_endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    const modelUrl = `http://${info?.labels.metrics_endpoint}/metrics`;
    const before = { gateway: await scrape(gatewayUrl), router: await scrape(routerUrl), model: await scrape(modelUrl) };

    // 5 single predictions and one batch of 3: 6 requests, 8 queries, 8 inputs through the model.
    for (let i = 0; i < 5; i++) expect((await postJson(`${system.gatewayUrl}/counted/predict`, { input: [i, 1] })).json.default).toBe(false);
    const batch = await postJson(`${system.gatewayUrl}/counted/predict`, { input_batch: [[1], [2], [3]] });
    expect((batch.json.batch_predictions as unknown[]).length).toBe(3);

    const after = { gateway: await scrape(gatewayUrl), router: await scrape(routerUrl), model: await scrape(modelUrl) };
    const delta = (which: keyof typeof before, name: string, labels: Record<string, string> = {}) =>
      total(after[which], name, labels) - total(before[which], name, labels);
    const app = { application: "counted" };
    const version = { model: "sum-model", version: "1" };

    expect(delta("gateway", "clipper_gateway_requests_total", { ...app, protocol: "rest", outcome: "answered", code: "ok" })).toBe(6);
    expect(delta("gateway", "clipper_gateway_request_duration_seconds_count", app)).toBe(6);
    expect(delta("gateway", "clipper_gateway_request_duration_seconds_bucket", { ...app, le: "+Inf" })).toBe(6);
    expect(delta("gateway", "clipper_gateway_request_duration_seconds_sum", app)).toBeGreaterThan(0);

    expect(delta("router", "clipper_router_queries_total", { ...app, ...version, outcome: "answered", reason: "predicted" })).toBe(8);
    expect(delta("router", "clipper_router_queries_total", app)).toBe(8);
    expect(delta("router", "clipper_router_query_duration_seconds_count", { ...app, ...version })).toBe(8);
    expect(delta("router", "clipper_router_queue_wait_seconds_count", { ...app, ...version })).toBe(8);
    expect(delta("router", "clipper_router_batch_size_sum", version)).toBe(8);
    const batches = delta("router", "clipper_router_batch_size_count", version);
    expect(batches).toBeGreaterThanOrEqual(2);
    expect(batches).toBeLessThanOrEqual(8);
    expect(delta("router", "clipper_router_model_duration_seconds_count", { ...version, outcome: "ok" })).toBe(batches);
    expect(total(after.router, "clipper_router_inflight_batches", version)).toBe(0);

    expect(delta("model", "clipper_model_inputs_total", { ...version, outcome: "ok" })).toBe(8);
    expect(delta("model", "clipper_model_requests_total", { ...version, outcome: "ok" })).toBe(batches);
    expect(delta("model", "clipper_model_batch_size_sum", version)).toBe(8);

    const manager = await scrape(managerUrl);
    expect(total(manager, "clipper_container_manager_replicas_desired", version)).toBe(1);
    expect(total(manager, "clipper_container_manager_replicas_ready", version)).toBe(1);
    expect(total(manager, "clipper_container_manager_replica_start_duration_seconds_count", version)).toBe(1);
  });
});
