import http from "node:http";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ConfigSnapshotSchema } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, prom, viewFromSnapshot } from "../shared/index.js";
import { GatewayMetrics } from "./gateway-metrics.js";
import { Predictor } from "./predictor.js";
import { createRestHandler } from "./rest-handler.js";
import type { QueryRouter } from "./router-stream.js";

/** A REST handler on a loopback port whose router answers with `query`; the log lines it writes are kept. */
async function serve(query: QueryRouter, overloadReason?: (application: string) => string | undefined) {
  const logged: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logged.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const config = viewFromSnapshot(
    create(ConfigSnapshotSchema, { revision: 1n, applications: [{ name: "app", inputType: InputType.DOUBLES, defaultOutput: "0", sloMicros: 100_000n }] }),
  );
  const registry = new prom.Registry();
  const handler = createRestHandler({
    predictor: new Predictor({
      config: () => config,
      router: { query, feedback: { submitFeedback: () => Promise.reject(new Error("no feedback here")) }, ...(overloadReason ? { overloadReason } : {}) },
      defaultTimeoutMs: 1000,
    }),
    metrics: new GatewayMetrics(registry),
    registry,
    maxBodyBytes: 1 << 16,
    parse: { allowRaggedBatch: false },
    readiness: async () => ({ ready: true, cause: "" }),
    logger: pino(sink),
  });
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const predict = async (body = JSON.stringify({ input: [1] })) => {
    const res = await fetch(`http://127.0.0.1:${port}/app/predict`, { method: "POST", body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { predict, logged, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe("REST errors", () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  it("an internal error answers a generic 500 with a correlation id; its cause goes only to the log, under that id", async () => {
    const rest = await serve(async () => {
      throw new Error("secret detail: /var/lib/router/state.db is locked");
    });
    closers.push(rest.close);
    const { status, body } = await rest.predict();
    expect(status).toBe(500);
    expect(body.error).toBe("internal error");
    expect(JSON.stringify(body)).not.toContain("secret detail");
    expect(body.correlation_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.cause).toContain(String(body.correlation_id));
    const line = rest.logged.find((l) => l.correlationId === body.correlation_id);
    expect(JSON.stringify(line)).toContain("secret detail");
  });

  it("an INTERNAL status from the router is not passed on either; expected failures keep their message", async () => {
    let error = new ConnectError("stack of the router: QueryProcessor.query at line 12", Code.Internal);
    const rest = await serve(async () => {
      throw error;
    });
    closers.push(rest.close);
    const internal = await rest.predict();
    expect(internal.status).toBe(500);
    expect(JSON.stringify(internal.body)).not.toContain("QueryProcessor");
    error = new ConnectError("model m has no room in its queue", Code.ResourceExhausted);
    const shed = await rest.predict();
    expect(shed).toEqual({ status: 429, body: { error: "too many requests", cause: "model m has no room in its queue" } });
  });

  it("refuses for overload before reading the body when the router can tell, and the connection stays usable", async () => {
    let overloaded = true;
    let asked = 0;
    const rest = await serve(
      async () => {
        asked++;
        return [];
      },
      (application) => (overloaded ? `model of ${application} would answer after the SLO` : undefined),
    );
    closers.push(rest.close);
    // Not even parsed: a body that is not JSON gets the 429, not a 400.
    const shed = await rest.predict("{ not json");
    expect(shed).toEqual({ status: 429, body: { error: "too many requests", cause: "model of app would answer after the SLO" } });
    expect(asked).toBe(0);
    overloaded = false;
    const bad = await rest.predict("{ not json");
    expect(bad.status).toBe(400);
  });
});
