// Where the latency of one query goes at concurrency 1: the same no-op query
// sent, one at a time, to each hop of the path in turn (model container
// directly, router Query, gateway gRPC, gateway REST), alternating between them
// in short rounds so drift on a noisy machine hits all of them alike. The
// differences between adjacent p50s are what each hop adds.
//   node --import tsx bench/hops.ts [--rounds N] [--per-round N] [--model-calls stream|unary]
import { createClient } from "@connectrpc/connect";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { QueryService } from "../gen/clipper/v1/query_service_pb.js";
import { createGrpcTransport } from "../services/shared/index.js";
import { TestSystem, waitFor } from "../test/system.js";
import { nodeModel, pythonModel } from "./deploy.js";
import { LatencyHistogram } from "./loadgen/histogram.js";
import { uniqueMix } from "./loadgen/inputs.js";
import type { SendFn } from "./loadgen/loadgen.js";
import { cpuMs, replicaPid, routerTimes } from "./loadgen/processes.js";
import { gatewayDefault, grpcGatewayTarget, modelDirectTarget, restTarget, type Target } from "./loadgen/targets.js";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!(Number.isInteger(value) && value > 0 && value <= 100_000)) throw new Error(`${name} must be a whole number in [1, 100000]`);
  return value;
}

/** QueryService.Query on the router, as the gateway's unary path calls it. */
function routerTarget(address: string, application: string, values: (sequence: number) => number[]): Target {
  const transport = createGrpcTransport({ address });
  const client = createClient(QueryService, transport);
  const send: SendFn = async (sequence) => {
    const doubles = values(sequence);
    const res = await client.query({ application, inputs: { type: InputType.DOUBLES, doubles, lengths: [doubles.length] } }, { timeoutMs: 30_000 });
    if (res.results[0]?.default !== false) throw new Error(`router answered ${JSON.stringify(res.results[0]?.defaultExplanation ?? "nothing")}`);
    return "ok";
  };
  return { send, close: () => transport.close() };
}

async function main(): Promise<void> {
  const rounds = flag("--rounds", 20);
  const perRound = flag("--per-round", 200);
  const mix = uniqueMix("unique", [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]);
  const modelCalls = process.argv.includes("--model-calls") ? process.argv[process.argv.indexOf("--model-calls") + 1] : "stream";
  if (modelCalls !== "stream" && modelCalls !== "unary") throw new Error("--model-calls is stream or unary");
  const system = new TestSystem({ args: { router: ["--model-calls", modelCalls] } });
  try {
    await system.start();
    const results: string[] = [];
    for (const [app, model] of [
      ["noop", pythonModel("noop-py", "noop.py")],
      ["noop-node", nodeModel("noop-node", "noop.ts")],
    ] as const) {
      await system.deployApp(app, model, { sloMicros: 1_000_000n, timeoutSeconds: 120 });
      const replica = (await system.containerManager().listModelReplicas({ modelName: model.name })).replicas[0]?.endpoint;
      if (replica === undefined) throw new Error(`no replica of ${model.name}`);
      const hops: Array<[string, Target]> = [
        ["model container (grpc-js)", modelDirectTarget(replica, mix)],
        ["router Query (grpc-js)", routerTarget(system.address("router"), app, mix.values)],
        ["gateway Predict (gRPC)", grpcGatewayTarget(system.address("gateway"), app, mix)],
        ["gateway REST", restTarget({ url: `${system.gatewayUrl}/${app}/predict`, mix, connections: 1, isDefault: gatewayDefault })],
      ];
      const histograms = hops.map(() => new LatencyHistogram());
      const processes = { gateway: system.pid("gateway") ?? 0, router: system.pid("router") ?? 0, model: replicaPid(model.name) };
      /** CPU ms per process spent on each hop's measured calls. */
      const cpu = hops.map(() => ({ loadgen: 0, gateway: 0, router: 0, model: 0, calls: 0 }));
      const routerBefore = await routerTimes(system, model.name);
      let sequence = 0;
      for (const [, target] of hops) await waitFor(`${app} answering`, async () => ((await target.send(sequence++)) === "ok" ? true : undefined), 60_000);
      for (let round = 0; round < rounds; round++) {
        for (const [i, [, target]] of hops.entries()) {
          const selfBefore = process.cpuUsage();
          const before = { gateway: cpuMs(processes.gateway), router: cpuMs(processes.router), model: cpuMs(processes.model) };
          for (let n = 0; n < perRound; n++) {
            const started = performance.now();
            const outcome = await target.send(sequence++);
            if (outcome !== "ok") throw new Error("a default answer: the measurement would not be of the model path");
            // The first calls of each round warm the connection after the other hops ran.
            if (n >= 10) histograms[i]?.record((performance.now() - started) * 1000);
          }
          const self = process.cpuUsage(selfBefore);
          const spent = cpu[i] as (typeof cpu)[number];
          spent.loadgen += (self.user + self.system) / 1000;
          spent.gateway += cpuMs(processes.gateway) - before.gateway;
          spent.router += cpuMs(processes.router) - before.router;
          spent.model += cpuMs(processes.model) - before.model;
          spent.calls += perRound;
        }
      }
      for (const [, target] of hops) target.close();
      const routerAfter = await routerTimes(system, model.name);
      results.push(`\n${app} (${model.name}), router --model-calls ${modelCalls}, ${rounds} rounds x ${perRound} calls per hop, one at a time:`);
      results.push(
        "| path | p50 ms | p90 ms | p99 ms | p50 added by the last hop ms | CPU µs per call: load generator / gateway / router / model |",
        "|---|---|---|---|---|---|",
      );
      let previous: number | undefined;
      for (const [i, [name]] of hops.entries()) {
        const h = histograms[i] as LatencyHistogram;
        const p50 = h.quantile(0.5) / 1000;
        const c = cpu[i] as (typeof cpu)[number];
        const perCall = [c.loadgen, c.gateway, c.router, c.model].map((ms) => ((ms * 1000) / c.calls).toFixed(0)).join(" / ");
        results.push(
          `| ${name} | ${p50.toFixed(3)} | ${(h.quantile(0.9) / 1000).toFixed(3)} | ${(h.quantile(0.99) / 1000).toFixed(3)} | ${previous === undefined ? "" : (p50 - previous).toFixed(3)} | ${perCall} |`,
        );
        previous = p50;
      }
      const mean = (key: "queueWait" | "model") => ((routerAfter[key].sum - routerBefore[key].sum) / (routerAfter[key].count - routerBefore[key].count)) * 1000;
      results.push(
        `Inside the router (its /metrics, every hop above): mean queue wait ${mean("queueWait").toFixed(3)} ms, mean model call ${mean("model").toFixed(3)} ms.`,
      );
    }
    console.log(results.join("\n"));
  } finally {
    await system.stop();
  }
}

await main();
