// Where the time of one query goes, hop by hop, at concurrency 1: the system
// runs with tracing on (exporting to a receiver in this process), sequential
// REST requests go to a no-op model, and each trace's span start and end
// times (wall clock, the same machine) give the medians of every step.
//   node --import tsx bench/hop-timeline.ts [--requests N] [--model py|node]
// Tracing costs CPU of its own, so absolute figures are higher than in
// bench/run.sh; the point is which step holds the time.
import http from "node:http";
import { deployApp, nodeModel, pythonModel } from "./deploy.js";
import { type ReceivedSpan, startOtlpReceiver } from "../test/observability/otlp-receiver.js";
import { TestSystem, waitFor } from "../test/system.js";

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const requests = Number(flag("--requests", "300"));
const which = flag("--model", "py");

function post(agent: http.Agent, url: URL, body: string): Promise<{ queryId: number; sentNanos: bigint; receivedNanos: bigint }> {
  return new Promise((resolve, reject) => {
    const sentNanos = wallNanos();
    const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const receivedNanos = wallNanos();
        const json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { query_id: number };
        resolve({ queryId: json.query_id, sentNanos, receivedNanos });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Wall-clock nanoseconds with sub-millisecond resolution, comparable with the spans' timestamps. */
function wallNanos(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

async function main(): Promise<void> {
  const receiver = await startOtlpReceiver();
  process.env["OTEL_TRACES_EXPORTER"] = "otlp";
  process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint;
  process.env["OTEL_BSP_SCHEDULE_DELAY"] = "200";
  const system = new TestSystem();
  try {
    await system.start();
    const model = which === "node" ? nodeModel("noop-node", "noop.ts") : pythonModel("noop-py", "noop.py");
    await deployApp(system, "noop", 1_000_000n, model);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const url = new URL(`${system.gatewayUrl}/noop/predict`);
    const body = JSON.stringify({ input: [0.5, 1.5, 2.5, 3.5] });
    await waitFor("a model answer", async () => {
      const r = await post(agent, url, body).catch(() => undefined);
      return r !== undefined && r.queryId > 0 ? true : undefined;
    });
    for (let i = 0; i < 200; i++) await post(agent, url, body); // warm-up
    const sent = [];
    for (let i = 0; i < requests; i++) sent.push(await post(agent, url, body));
    await new Promise((r) => setTimeout(r, 1500));

    const byTrace = new Map<string, ReceivedSpan[]>();
    for (const s of receiver.spans) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
    const gatewayByQuery = new Map<string, ReceivedSpan>();
    for (const s of receiver.spans) if (s.name === "clipper.gateway/predict") gatewayByQuery.set(String(s.attributes["clipper.query_id"]), s);

    const steps = new Map<string, number[]>();
    const add = (step: string, from: bigint, to: bigint) => steps.set(step, [...(steps.get(step) ?? []), Number(to - from) / 1e6]);
    let complete = 0;
    for (const r of sent) {
      const gateway = gatewayByQuery.get(String(r.queryId));
      if (gateway === undefined) continue;
      const spans = byTrace.get(gateway.traceId) ?? [];
      const router = spans.find((s) => s.name === "clipper.v1.QueryService/Query");
      const batch = spans.find((s) => s.name === "clipper.router/batch");
      const model = spans.find((s) => s.name === "clipper.model.v1.ModelService/Predict");
      if (router === undefined || batch === undefined || model === undefined) continue;
      complete++;
      add("1 client sends → gateway span starts (HTTP parse, JSON)", r.sentNanos, gateway.startNanos);
      add("2 gateway span → router span (QueryStream hop)", gateway.startNanos, router.startNanos);
      add("3 router span → batch sent (select, queue, batch)", router.startNanos, batch.startNanos);
      add("4 batch sent → model span starts (gRPC hop to the model)", batch.startNanos, model.startNanos);
      add("5 model span (the runtime's handler)", model.startNanos, model.endNanos);
      add("6 model span ends → batch answered (gRPC hop back)", model.endNanos, batch.endNanos);
      add("7 batch answered → router span ends", batch.endNanos, router.endNanos);
      add("8 router span ends → gateway span ends (QueryStream hop back)", router.endNanos, gateway.endNanos);
      add("9 gateway span ends → client receives (JSON, HTTP write)", gateway.endNanos, r.receivedNanos);
      add("total (client)", r.sentNanos, r.receivedNanos);
    }
    console.log(`model ${which}, ${requests} sequential REST requests, ${complete} complete traces; medians in ms:`);
    for (const [step, xs] of steps) console.log(`${median(xs).toFixed(3).padStart(8)}  ${step}`);
  } finally {
    await system.stop();
    await receiver.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
