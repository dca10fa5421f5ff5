import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ConfigSnapshotSchema } from "../../gen/clipper/v1/resources_pb.js";
import { prom, viewFromSnapshot } from "../shared/index.js";
import { RouterMetrics } from "./router-metrics.js";

/** The value of one series in the registry's text, or undefined when the series does not exist. */
async function seriesValue(registry: prom.Registry, series: string): Promise<number | undefined> {
  const line = (await registry.metrics()).split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("RouterMetrics", () => {
  const view = viewFromSnapshot(
    create(ConfigSnapshotSchema, {
      applications: [
        { name: "learns", inputType: InputType.DOUBLES, linkedModels: ["m"], policy: { kind: { case: "exp3", value: { gamma: 0.1 } } } },
        { name: "empty", inputType: InputType.DOUBLES },
      ],
      currentVersions: [{ modelName: "m", version: "1" }],
    }),
  );

  it("creates each linked version's query and feedback series at zero, so rate() sees their first events", async () => {
    const registry = new prom.Registry();
    const metrics = new RouterMetrics(registry);
    const labels = 'application="learns",model="m",version="1"';
    expect(await seriesValue(registry, `clipper_router_queries_total{${labels},outcome="default",reason="slo_exceeded"}`)).toBeUndefined();
    metrics.follow(view);
    for (const [outcome, reason] of [
      ["answered", "predicted"],
      ["default", "slo_exceeded"],
      ["default", "model_error"],
      ["shed", "refused"],
    ]) {
      expect(await seriesValue(registry, `clipper_router_queries_total{${labels},outcome="${outcome}",reason="${reason}"}`)).toBe(0);
    }
    expect(
      await seriesValue(registry, 'clipper_router_queries_total{application="empty",model="none",version="none",outcome="default",reason="no_model"}'),
    ).toBe(0);
    expect(await seriesValue(registry, `clipper_router_query_duration_seconds_count{${labels}}`)).toBe(0);
    expect(await seriesValue(registry, `clipper_router_feedback_loss_count{${labels}}`)).toBe(0);
    expect(await seriesValue(registry, 'clipper_router_feedback_total{application="empty"}')).toBe(0);
    // Only a learning policy's versions get a loss series.
    expect(await seriesValue(registry, 'clipper_router_feedback_loss_count{application="empty",model="none",version="none"}')).toBeUndefined();
  });

  it("observes feedback losses per model version, and a later configuration change keeps what was counted", async () => {
    const registry = new prom.Registry();
    const metrics = new RouterMetrics(registry);
    metrics.follow(view);
    const request = metrics.requestStarted("learns");
    request.routed("m:1");
    request.answered({ results: [], outcomes: ["predicted"] });
    metrics.countFeedback("learns", 3, new Map([["m:1", [0, 1, 0.25]]]));
    metrics.follow(view);
    const labels = 'application="learns",model="m",version="1"';
    expect(await seriesValue(registry, `clipper_router_queries_total{${labels},outcome="answered",reason="predicted"}`)).toBe(1);
    expect(await seriesValue(registry, `clipper_router_query_duration_seconds_count{${labels}}`)).toBe(1);
    expect(await seriesValue(registry, `clipper_router_feedback_loss_count{${labels}}`)).toBe(3);
    expect(await seriesValue(registry, `clipper_router_feedback_loss_sum{${labels}}`)).toBe(1.25);
    expect(await seriesValue(registry, `clipper_router_feedback_loss_bucket{le="0",${labels}}`)).toBe(1);
    expect(await seriesValue(registry, 'clipper_router_feedback_total{application="learns"}')).toBe(3);
  });

  it("creates the series a later change calls for: a cache turned on, a learning policy set", async () => {
    const registry = new prom.Registry();
    const metrics = new RouterMetrics(registry);
    const plain = (cacheEnabled: boolean, learning: boolean) =>
      viewFromSnapshot(
        create(ConfigSnapshotSchema, {
          applications: [
            {
              name: "later",
              inputType: InputType.DOUBLES,
              linkedModels: ["m"],
              cacheEnabled,
              ...(learning ? { policy: { kind: { case: "thompson", value: {} } } } : {}),
            },
          ],
          currentVersions: [{ modelName: "m", version: "1" }],
        }),
      );
    const labels = 'application="later",model="m",version="1"';
    metrics.follow(plain(false, false));
    expect(await seriesValue(registry, `clipper_router_queries_total{${labels},outcome="answered",reason="cached"}`)).toBeUndefined();
    expect(await seriesValue(registry, `clipper_router_feedback_loss_count{${labels}}`)).toBeUndefined();
    metrics.follow(plain(true, true));
    expect(await seriesValue(registry, `clipper_router_queries_total{${labels},outcome="answered",reason="cached"}`)).toBe(0);
    expect(await seriesValue(registry, `clipper_router_feedback_loss_count{${labels}}`)).toBe(0);
  });
});
