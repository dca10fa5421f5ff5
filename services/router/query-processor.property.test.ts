import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InputsSchema, InputType, type Output, OutputSchema } from "../../gen/clipper/common/v1/data_pb.js";
import type { QueryResult } from "../../gen/clipper/v1/query_service_pb.js";
import { ConfigSnapshotSchema, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, unavailable, viewFromSnapshot } from "../shared/index.js";
import type { ModelClientFactory } from "./model-clients.js";
import { PolicySelector } from "./model-selector.js";
import { PredictionCache } from "./prediction-cache.js";
import { QueryProcessor } from "./query-processor.js";
import { FakeClock } from "./testing/fake-clock.js";

const flush = () => new Promise((resolve) => setImmediate(resolve));

const scenario = fc.record({
  sloMs: fc.integer({ min: 3, max: 40 }),
  cache: fc.boolean(),
  maxBatchSize: fc.integer({ min: 0, max: 4 }),
  fixedSize: fc.boolean(),
  maxWaitMicros: fc.option(fc.integer({ min: 0, max: 5000 }), { nil: undefined }),
  maxInFlightPerReplica: fc.integer({ min: 1, max: 2 }),
  maxQueueLength: fc.integer({ min: 2, max: 12 }),
  replicas: fc.array(fc.record({ latencyMs: fc.integer({ min: 0, max: 8 }), failEvery: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 3 }),
  requests: fc.array(
    fc.record({
      at: fc.integer({ min: 0, max: 30 }),
      inputs: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 4 }),
      cancelAfter: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 12 },
  ),
});

describe("QueryProcessor (property)", () => {
  it("never loses, duplicates or mis-assigns an answer; batches stay within bounds; expired queries are never sent", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const clock = new FakeClock();
        const view = viewFromSnapshot(
          create(ConfigSnapshotSchema, {
            applications: [
              {
                name: "app",
                inputType: InputType.STRINGS,
                defaultOutput: "default",
                sloMicros: BigInt(s.sloMs * 1000),
                linkedModels: ["m"],
                cacheEnabled: s.cache,
              },
            ],
            models: [
              {
                name: "m",
                version: "1",
                inputType: InputType.STRINGS,
                maxBatchSize: s.maxBatchSize,
                batching: {
                  fixedSize: s.fixedSize,
                  maxInFlightPerReplica: s.maxInFlightPerReplica,
                  maxQueueLength: s.maxQueueLength,
                  ...(s.maxWaitMicros === undefined ? {} : { maxWaitMicros: s.maxWaitMicros }),
                },
              },
            ],
            currentVersions: [{ modelName: "m", version: "1" }],
            replicaSets: [
              { modelName: "m", modelVersion: "1", replicas: s.replicas.map((_, i) => ({ id: `r${i}`, endpoint: `r:${i}`, state: ReplicaState.READY })) },
            ],
          }),
        );
        /** Deadline of every query id still unanswered, checked whenever a model receives it. */
        const deadlines = new Map<string, number>();
        const callsPerReplica = new Map<string, number>();
        const violations: string[] = [];
        const models: ModelClientFactory = {
          clientFor: (endpoint) => ({
            predict: (inputs, _batchId, { signal }) => {
              const n = (callsPerReplica.get(endpoint) ?? 0) + 1;
              callsPerReplica.set(endpoint, n);
              const replica = s.replicas[Number(endpoint.slice(2))] as { latencyMs: number; failEvery: number };
              if (s.maxBatchSize > 0 && inputs.strings.length > s.maxBatchSize) violations.push(`batch of ${inputs.strings.length}`);
              if (s.fixedSize && s.maxBatchSize > 0 && inputs.strings.length !== s.maxBatchSize) violations.push(`fixed batch of ${inputs.strings.length}`);
              for (const id of inputs.strings) {
                const deadline = deadlines.get(id.split("#")[0] as string);
                if (deadline !== undefined && deadline <= clock.now()) violations.push(`${id} sent at ${clock.now()} after its deadline ${deadline}`);
              }
              return new Promise<Output[]>((resolve, reject) => {
                signal.addEventListener("abort", () => reject(new ConnectError("cancelled", Code.Canceled)), { once: true });
                clock.setTimer(replica.latencyMs, () => {
                  if (replica.failEvery > 0 && n % replica.failEvery === 0) reject(unavailable("replica crashed"));
                  else resolve(inputs.strings.map((id) => create(OutputSchema, { result: { case: "value", value: `echo:${id}` } })));
                });
              });
            },
          }),
        };
        const p = new QueryProcessor({
          config: () => view,
          models,
          selector: new PolicySelector(),
          clock,
          limits: { maxBatch: 100, maxInputSize: 100 },
          maxWaitMs: 60_000,
          cache: new PredictionCache(),
        });
        const outcomes: Array<{ ids: string[]; result?: QueryResult[]; error?: unknown }> = [];
        const pending: Promise<void>[] = [];
        const order = [...s.requests].sort((a, b) => a.at - b.at);
        let next = 0;
        for (let t = 0; t <= 300; t++) {
          for (; next < order.length && (order[next]?.at ?? 0) <= t; next++) {
            const r = order[next] as (typeof order)[number];
            // The input names the query; with the cache on, repeated values share an answer legitimately.
            const ids = r.inputs.map((v, i) => (s.cache ? `v${v}` : `q${next}-${i}-v${v}`));
            for (const id of ids) if (!deadlines.has(id) || (deadlines.get(id) as number) < clock.now() + s.sloMs) deadlines.set(id, clock.now() + s.sloMs);
            const caller = new AbortController();
            if (r.cancelAfter !== undefined) clock.setTimer(r.cancelAfter, () => caller.abort());
            const outcome: (typeof outcomes)[number] = { ids };
            outcomes.push(outcome);
            pending.push(
              p.query("app", create(InputsSchema, { type: InputType.STRINGS, strings: ids }), { signal: caller.signal }).then(
                (result) => {
                  outcome.result = result.results;
                },
                (error: unknown) => {
                  outcome.error = error;
                },
              ),
            );
          }
          clock.advance(1);
          await flush();
        }
        await Promise.all(pending);
        expect(violations).toEqual([]);
        for (const o of outcomes) {
          if (o.error !== undefined) {
            expect(o.error).toMatchObject({ code: Code.ResourceExhausted });
            continue;
          }
          const result = o.result as QueryResult[];
          expect(result).toHaveLength(o.ids.length);
          result.forEach((a, i) => {
            if (a.default) expect(a.output).toBe("default");
            else expect(a.output).toBe(`echo:${o.ids[i]}`);
          });
        }
        const allIds = outcomes.flatMap((o) => o.result?.map((a) => a.queryId) ?? []);
        expect(new Set(allIds).size).toBe(allIds.length);
        p.close();
        expect(clock.pending()).toBe(0);
      }),
      { numRuns: 60 },
    );
  });
});
