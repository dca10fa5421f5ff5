import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { ConfigSnapshotSchema } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, emptyConfigView, viewFromSnapshot } from "../shared/index.js";
import { Predictor } from "./predictor.js";
import { unaryQueryRouter } from "./router-stream.js";

describe("Predictor", () => {
  it("answers up to --max-in-flight queries at once and sheds the next with RESOURCE_EXHAUSTED", async () => {
    const release: Array<() => void> = [];
    const router = createClient(
      QueryService,
      createRouterTransport(({ service }) =>
        service(QueryService, {
          async query() {
            await new Promise<void>((resolve) => release.push(resolve));
            return { results: [{ queryId: 1n, output: "ok" }] };
          },
        }),
      ),
    );
    const predictor = new Predictor({
      config: () => emptyConfigView(),
      router: { query: unaryQueryRouter(router), feedback: router },
      defaultTimeoutMs: 5000,
      maxInFlight: 2,
    });
    const inputs = create(InputsSchema, { type: InputType.DOUBLES, lengths: [1], doubles: [1] });
    const call = () => predictor.query("app", inputs, { version: "", uid: "", timeoutMs: undefined, signal: undefined });
    const first = call();
    const second = call();
    await new Promise((r) => setTimeout(r, 20));
    expect(predictor.queriesInFlight).toBe(2);
    const shed = (await call().catch((e: unknown) => e)) as ConnectError;
    expect(shed).toBeInstanceOf(ConnectError);
    expect(shed.code).toBe(Code.ResourceExhausted);
    expect(shed.rawMessage).toMatch(/limit of 2 queries at once \(--max-in-flight\)/);
    for (const r of release) r();
    await Promise.all([first, second]);
    expect(predictor.queriesInFlight).toBe(0);
    const third = call();
    await new Promise((r) => setTimeout(r, 20));
    release.at(-1)?.();
    expect((await third)[0]?.output).toBe("ok");
  });

  it("counts the application's SLO from the request's arrival: the router gets what is left of it", async () => {
    const timeouts: number[] = [];
    const view = viewFromSnapshot(
      create(ConfigSnapshotSchema, { revision: 1n, applications: [{ name: "app", inputType: InputType.DOUBLES, defaultOutput: "0", sloMicros: 100_000n }] }),
    );
    const predictor = new Predictor({
      config: () => view,
      router: {
        query: async (_query, timeoutMs) => {
          timeouts.push(timeoutMs);
          return [];
        },
        feedback: { submitFeedback: () => Promise.reject(new Error("unused")) },
      },
      defaultTimeoutMs: 30_000,
    });
    const inputs = create(InputsSchema, { type: InputType.DOUBLES, lengths: [1], doubles: [1] });
    await predictor.query("app", inputs, { version: "", uid: "", timeoutMs: undefined, signal: undefined, receivedAt: performance.now() - 30 });
    await predictor.query("app", inputs, { version: "", uid: "", timeoutMs: 50, signal: undefined, receivedAt: performance.now() });
    await predictor.query("app", inputs, { version: "", uid: "", timeoutMs: undefined, signal: undefined });
    expect(timeouts[0]).toBeGreaterThan(60);
    expect(timeouts[0]).toBeLessThanOrEqual(70);
    expect(timeouts[1]).toBe(50);
    expect(timeouts[2]).toBe(30_000);
  });

  it("sheds a low-priority call once half of --max-in-flight is open, and still admits normal calls up to the bound", async () => {
    const release: Array<() => void> = [];
    const predictor = new Predictor({
      config: () => emptyConfigView(),
      router: {
        query: () => new Promise((resolve) => release.push(() => resolve([]))),
        feedback: { submitFeedback: () => Promise.reject(new Error("unused")) },
      },
      defaultTimeoutMs: 5000,
      maxInFlight: 4,
    });
    const inputs = create(InputsSchema, { type: InputType.DOUBLES, lengths: [1], doubles: [1] });
    const call = (lowPriority: boolean) => predictor.query("app", inputs, { version: "", uid: "", timeoutMs: undefined, signal: undefined, lowPriority });
    const open = [call(true), call(false)];
    const shed = (await call(true).catch((e: unknown) => e)) as ConnectError;
    expect(shed.code).toBe(Code.ResourceExhausted);
    expect(shed.rawMessage).toMatch(/answering 2 queries at once, the half of its --max-in-flight \(4\) open to low-priority calls/);
    open.push(call(false), call(false));
    expect(predictor.queriesInFlight).toBe(4);
    for (const r of release) r();
    await Promise.all(open);
  });
});
