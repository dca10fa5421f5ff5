import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { Code, ConnectError, invalidArgument } from "./errors.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";
import { registration, startGrpcServer, type RunningGrpcServer } from "./grpc-server.js";

describe("grpc-js server and transport for connect-es services", () => {
  let server: RunningGrpcServer;
  let transport: GrpcTransport;
  beforeAll(async () => {
    server = await startGrpcServer({
      port: 0,
      reflection: true,
      services: [
        registration(ModelService, {
          predict(req) {
            if (req.inputs?.type !== InputType.DOUBLES) throw invalidArgument("inputs.type must be doubles");
            return { outputs: req.inputs.lengths.map((n) => ({ result: { case: "value", value: String(n) } })) };
          },
          getMetadata(_req, ctx) {
            return { modelName: ctx.requestHeader.get("x-model") ?? "none", runtime: String(ctx.timeoutMs() !== undefined) };
          },
        }),
      ],
    });
    transport = createGrpcTransport({ address: server.address });
  });
  afterAll(async () => {
    transport.close();
    await server.close();
  });

  it("answers unary calls with the handler's message", async () => {
    const client = createClient(ModelService, transport);
    const res = await client.predict({ inputs: { type: InputType.DOUBLES, lengths: [2, 1], doubles: [1, 2, 3] } });
    expect(res.outputs.map((o) => o.result.value)).toEqual(["2", "1"]);
  });

  it("passes headers and deadlines to the handler", async () => {
    const client = createClient(ModelService, transport);
    const res = await client.getMetadata({}, { headers: { "x-model": "m1" }, timeoutMs: 1000 });
    expect(res.modelName).toBe("m1");
    expect(res.runtime).toBe("true");
  });

  it("carries a ConnectError's code and message to the client", async () => {
    const client = createClient(ModelService, transport);
    const err = await client.predict({ inputs: { type: InputType.INTS } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toBe("inputs.type must be doubles");
  });

  it("answers Unimplemented for a method without a handler", async () => {
    const client = createClient(ModelService, transport);
    const err = (await client.checkReadiness({}).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.Unimplemented);
  });

  it("serves grpc.health.v1 Check and Watch", async () => {
    const health = createClient(Health, transport);
    expect((await health.check({ service: "clipper.model.v1.ModelService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const err = (await health.check({ service: "nope" }).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.NotFound);
    const abort = new AbortController();
    const seen: number[] = [];
    const watching = (async () => {
      for await (const r of health.watch({ service: "" }, { signal: abort.signal })) {
        seen.push(r.status);
        if (seen.length === 1) server.health.set("", "NOT_SERVING");
        if (seen.length === 2) abort.abort();
      }
    })().catch(() => undefined);
    await watching;
    expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
    server.health.set("", "SERVING");
  });
});
