// Where the CPU goes under load: a no-op Python model over REST, closed loop at
// 1, 64 and 256 clients, with each process's CPU per query (from /proc, all
// threads) and the router's mean queue wait, model-call time and batch size.
// It shows whether a point is limited by a saturated process or by the time a
// wave of queries spends passing through the processes one after another.
//   node --import tsx bench/cpu-per-query.ts [--seconds S] [--gateway-args "--workers 2"] [--router-in-process] [--max-wait-micros N] [--max-in-flight N] [--clients 1,64,256]
import { TestSystem } from "../test/system.js";
import { pythonModel } from "./deploy.js";
import { uniqueMix } from "./loadgen/inputs.js";
import { runClosedLoop } from "./loadgen/loadgen.js";
import { cpuMs, replicaPid, routerTimes } from "./loadgen/processes.js";
import { gatewayDefault, restTarget } from "./loadgen/targets.js";

const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const seconds = Number(arg("--seconds") ?? 6);
if (!(seconds > 0 && seconds <= 120)) throw new Error("--seconds must be in (0, 120]");
const gatewayArgs = (arg("--gateway-args") ?? "").split(" ").filter(Boolean);
/** The model's batching knobs (unset: the router's defaults, as in bench/run.ts). */
const maxWaitMicros = arg("--max-wait-micros") === undefined ? undefined : Number(arg("--max-wait-micros"));
const maxInFlight = Number(arg("--max-in-flight") ?? 0);
const clientCounts = (arg("--clients") ?? "1,64,256").split(",").map(Number);
if (clientCounts.some((c) => !(Number.isInteger(c) && c >= 1 && c <= 1024)))
  throw new Error("--clients is a comma-separated list of whole numbers in [1, 1024]");

/** The router inside the gateway's process (`--router in-process`): the router's CPU column is then part of the gateway's. */
const routerInProcess = process.argv.includes("--router-in-process");
const system = new TestSystem({ args: { gateway: gatewayArgs }, routerInProcess });
try {
  await system.start();
  await system.deployApp("noop", pythonModel("noop-py", "noop.py"), { sloMicros: 1_000_000n, timeoutSeconds: 120 });
  if (maxWaitMicros !== undefined || maxInFlight > 0) {
    await system.management().updateModel({
      name: "noop-py",
      version: "1",
      batching: { ...(maxWaitMicros !== undefined ? { maxWaitMicros } : {}), maxInFlightPerReplica: maxInFlight },
    });
  }
  const processes = { gateway: system.pid("gateway") ?? 0, router: system.pid("router") ?? 0, model: replicaPid("noop-py") };
  const rows = [
    `gateway ${gatewayArgs.join(" ") || "(defaults)"}${routerInProcess ? " --router in-process" : ""}, model batching max_wait_micros ${maxWaitMicros ?? "(router's choice)"} max_in_flight_per_replica ${maxInFlight || "(router's default)"}, ${seconds} s per point after 1 s of warm-up`,
    "| clients | throughput | p50 ms | p99 ms | CPU µs per query: load generator / gateway / router / model | cores busy | router: queue wait ms / model call ms / batch size |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const clients of clientCounts) {
    const target = restTarget({
      url: `${system.gatewayUrl}/noop/predict`,
      mix: uniqueMix("unique", [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]),
      connections: clients,
      isDefault: gatewayDefault,
    });
    try {
      await runClosedLoop({ send: target.send, concurrency: clients, durationMs: 1000, warmupMs: 0 });
      const before = { gateway: cpuMs(processes.gateway), router: cpuMs(processes.router), model: cpuMs(processes.model) };
      const timesBefore = await routerTimes(system, "noop-py");
      const selfBefore = process.cpuUsage();
      const r = await runClosedLoop({ send: target.send, concurrency: clients, durationMs: seconds * 1000, warmupMs: 0 });
      const self = process.cpuUsage(selfBefore);
      const times = await routerTimes(system, "noop-py");
      const answered = r.ok + r.defaults;
      const perQuery = [
        (self.user + self.system) / 1000,
        cpuMs(processes.gateway) - before.gateway,
        cpuMs(processes.router) - before.router,
        cpuMs(processes.model) - before.model,
      ].map((ms) => (ms * 1000) / answered);
      const busy = (perQuery.reduce((a, b) => a + b, 0) * r.throughput) / 1e6;
      const mean = (key: "queueWait" | "model" | "batchSize", scale: number) =>
        (((times[key].sum - timesBefore[key].sum) / (times[key].count - timesBefore[key].count)) * scale).toFixed(2);
      rows.push(
        `| ${clients} | ${r.throughput.toFixed(0)}/s | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${perQuery.map((us) => us.toFixed(0)).join(" / ")} | ${busy.toFixed(2)} | ${mean("queueWait", 1000)} / ${mean("model", 1000)} / ${mean("batchSize", 1)} |`,
      );
    } finally {
      target.close();
    }
  }
  console.log(rows.join("\n"));
} finally {
  await system.stop();
}
