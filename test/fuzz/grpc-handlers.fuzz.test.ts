// Property-based fuzzing of every unary gRPC handler of the four services,
// running as real processes: random well-typed messages through a typed
// client, and random or truncated bytes through a raw grpc-js client.
import { create, type DescMethod, type DescService, type Message, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { PredictionService } from "../../gen/clipper/v1/prediction_service_pb.js";
import { QueryService, QueryStreamRequestSchema, type StreamedQuery, StreamedQuerySchema } from "../../gen/clipper/v1/query_service_pb.js";
import { Code, ConnectError } from "../../services/shared/index.js";
import { fieldNames, message } from "../../services/shared/testing/arbitrary-message.js";
import { type ServiceName, TestSystem } from "../system.js";

// FUZZ_RUNS raises the count for a longer local search; CI uses the default.
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const CALL_TIMEOUT_MS = 10_000;

/** What each server serves. DeployModel is left out: a random message could name a real program to run. */
const targets: Array<{ server: ServiceName; service: DescService }> = [
  { server: "gateway", service: PredictionService },
  { server: "router", service: QueryService },
  { server: "registry", service: ManagementService },
  { server: "container-manager", service: ContainerManagerService },
];
const unaryMethods = (service: DescService) => service.methods.filter((m) => m.methodKind === "unary");

/** Codes that mean the server failed, not the caller: never the answer to a client's mistake. */
const SERVER_FAULTS = new Set([Code.Internal, Code.Unknown, Code.DataLoss, Code.Unimplemented]);

describe("fuzzing every gRPC handler", () => {
  const system = new TestSystem();

  beforeAll(async () => {
    await system.start();
    await system.management().createApplication({ name: "fuzz-app", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 100_000n });
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  for (const { server, service } of targets) {
    for (const method of unaryMethods(service)) {
      it(`${service.typeName}.${method.name}: random messages get an answer or a client error naming a field`, async () => {
        const client = createClient(service, system.transport(system.address(server)));
        // A generic call by method name; the typed client has one function per method.
        const call = (client as unknown as Record<string, (req: Message, opts: { timeoutMs: number }) => Promise<unknown>>)[method.localName];
        if (call === undefined) throw new Error(`no client function for ${method.name}`);
        const names = fieldNames(method.input);
        await fc.assert(
          fc.asyncProperty(message(method.input), async (req) => {
            try {
              await call(req, { timeoutMs: CALL_TIMEOUT_MS });
            } catch (err) {
              const e = ConnectError.from(err);
              expect(SERVER_FAULTS.has(e.code), `${Code[e.code]}: ${e.rawMessage}`).toBe(false);
              expect(e.code, e.rawMessage).not.toBe(Code.DeadlineExceeded);
              expect(e.rawMessage.length).toBeGreaterThan(0);
              if (e.code === Code.InvalidArgument) {
                const named = [...names].some((n) => new RegExp(`\\b${n}\\b`).test(e.rawMessage));
                expect(named, `"${e.rawMessage}" names none of the request's fields`).toBe(true);
              }
            }
          }),
          { numRuns: NUM_RUNS },
        );
      }, 120_000);
    }
  }

  it("clipper.v1.QueryService.QueryStream: random queries on one stream each get an answer or a client error naming a field", async () => {
    const client = createClient(QueryService, system.transport(system.address("router")));
    const names = fieldNames(QueryStreamRequestSchema);
    await fc.assert(
      fc.asyncProperty(fc.array(message(StreamedQuerySchema), { maxLength: 8 }), async (queries) => {
        // Call ids unique (a duplicate is refused by design); deadlines short so that the run stays bounded.
        const calls = (queries as StreamedQuery[]).map((q, i) => ({ ...q, callId: BigInt(i + 1), timeoutMs: 1 + (q.timeoutMs % 2000) }));
        async function* one() {
          yield create(QueryStreamRequestSchema, { queries: calls });
        }
        const answered = new Set<bigint>();
        for await (const response of client.queryStream(one(), { timeoutMs: CALL_TIMEOUT_MS })) {
          for (const a of response.answers) {
            answered.add(a.callId);
            if (a.errorCode === 0) continue;
            expect(SERVER_FAULTS.has(a.errorCode as Code), `${Code[a.errorCode]}: ${a.errorMessage}`).toBe(false);
            expect(a.errorMessage.length).toBeGreaterThan(0);
            if (a.errorCode === Code.InvalidArgument) {
              expect(
                [...names].some((n) => new RegExp(`\\b${n}\\b`).test(a.errorMessage)),
                `"${a.errorMessage}" names none of the request's fields`,
              ).toBe(true);
            }
          }
        }
        expect(answered.size).toBe(calls.length);
      }),
      { numRuns: Math.ceil(NUM_RUNS / 4) },
    );
  }, 120_000);

  describe("raw bytes", () => {
    const identity = (b: Buffer) => b;
    /** Sends bytes as the request of a method; resolves with the status the server answers. */
    function rawCall(client: grpc.Client, method: DescMethod, bytes: Uint8Array): Promise<grpc.StatusObject> {
      return new Promise((resolve) => {
        const path = `/${method.parent.typeName}/${method.name}`;
        let status: grpc.StatusObject | undefined;
        const c = client.makeUnaryRequest(path, identity, identity, Buffer.from(bytes), { deadline: Date.now() + CALL_TIMEOUT_MS }, () => undefined);
        c.on("status", (s: grpc.StatusObject) => {
          status = s;
          resolve(s);
        });
        void status;
      });
    }

    for (const { server, service } of targets) {
      it(`${service.typeName}: random and truncated protobuf bytes never crash it or hang`, async () => {
        const client = new grpc.Client(system.address(server), grpc.credentials.createInsecure());
        try {
          const methods = unaryMethods(service);
          const valid = fc
            .integer({ min: 0, max: methods.length - 1 })
            .chain((i) => {
              const method = methods[i] as DescMethod;
              return fc.tuple(
                fc.constant(method),
                message(method.input).map((m) => toBinary(method.input, m)),
              );
            })
            .chain(([method, bytes]) =>
              fc.tuple(
                fc.constant(method),
                fc.integer({ min: 0, max: bytes.length }).map((cut) => bytes.subarray(0, cut)),
              ),
            );
          const random = fc.tuple(fc.constantFrom(...methods), fc.uint8Array({ maxLength: 256 }));
          await fc.assert(
            fc.asyncProperty(fc.oneof(valid, random), async ([method, bytes]) => {
              const status = await rawCall(client, method, bytes);
              expect(status.code, status.details).not.toBe(grpc.status.DEADLINE_EXCEEDED);
              expect(status.code, status.details).not.toBe(grpc.status.UNKNOWN);
              expect(status.code, status.details).not.toBe(grpc.status.UNAVAILABLE);
              expect(status.code, status.details).not.toBe(grpc.status.INTERNAL);
              // Bytes that are not a protobuf message are the client's mistake, and the answer names the message type.
              if (status.code === grpc.status.INVALID_ARGUMENT && status.details.startsWith("the request is not")) {
                expect(status.details).toContain(method.input.typeName);
              }
            }),
            { numRuns: NUM_RUNS },
          );
        } finally {
          client.close();
        }
        // Still serving after all of it.
        const health = await fetch(`${system.gatewayUrl}/healthz`);
        expect(health.status).toBe(200);
      }, 120_000);
    }
  });
});
