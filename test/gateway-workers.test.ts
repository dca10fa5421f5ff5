// A gateway of several processes on one port (--workers): every worker
// answers, /metrics is the sum over all of them, a killed worker is
// replaced, and SIGTERM stops them all.
import { execFileSync } from "node:child_process";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePrometheusText } from "../cli/top.js";
import { TestSystem, typescriptSumModel, waitFor } from "./system.js";

const WORKERS = 2;

/** The pids of the gateway's workers: the children of its primary process. */
function workerPids(primary: number): number[] {
  const out: number[] = [];
  for (const line of execFileSync("ps", ["-e", "-o", "pid=,ppid="], { encoding: "utf8" }).split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (ppid === primary && pid !== undefined && pid > 0) out.push(pid);
  }
  return out;
}

async function requestsTotal(url: string, app: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return parsePrometheusText(text)
    .filter((s) => s.name === "clipper_gateway_requests_total" && s.labels.application === app)
    .reduce((n, s) => n + s.value, 0);
}

describe(`a gateway with --workers ${WORKERS}`, () => {
  const system = new TestSystem({ args: { gateway: ["--workers", String(WORKERS)] } });

  beforeAll(async () => {
    await system.start();
    await system.deployApp("sum", typescriptSumModel(), { sloMicros: 5_000_000n });
    // Each worker follows the registry on its own: wait until a burst finds them all ready.
    await waitFor("every worker to answer", async () => {
      const answers = await Promise.all(Array.from({ length: 8 }, () => postJsonFresh(`${system.gatewayUrl}/sum/predict`, { input: [1, 2] })));
      return answers.every((a) => a.json.default === false) ? true : undefined;
    });
  }, 90_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("answers on every worker, and /metrics counts the requests of all of them", async () => {
    const before = await requestsTotal(system.gatewayUrl, "sum");
    // A new connection per request, so that node:cluster spreads them over the workers.
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => postJsonFresh(`${system.gatewayUrl}/sum/predict`, { input: [i, 1] })));
    expect(answers.map((a) => a.json.output)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const pids = new Set(answers.map((a) => a.servedBy));
    expect(pids.size).toBe(WORKERS);
    // Asked of any worker, the count is the sum over all of them.
    for (let i = 0; i < 4; i++) expect((await requestsTotal(system.gatewayUrl, "sum")) - before).toBe(40);
  });

  it("replaces a worker that dies", async () => {
    const primary = system.pid("gateway") as number;
    const [victim] = workerPids(primary);
    expect(victim).toBeDefined();
    process.kill(victim as number, "SIGKILL");
    await waitFor("a replacement worker", async () => {
      const now = workerPids(primary);
      return now.length === WORKERS && !now.includes(victim as number) ? now : undefined;
    });
    await waitFor("the replacement to answer", async () => {
      const answers = await Promise.all(Array.from({ length: 8 }, () => postJsonFresh(`${system.gatewayUrl}/sum/predict`, { input: [2, 2] })));
      return answers.every((a) => a.json.output === 4) ? true : undefined;
    });
  });

  it("stops every worker on SIGTERM", async () => {
    const primary = system.pid("gateway") as number;
    const workers = workerPids(primary);
    expect(workers.length).toBe(WORKERS);
    await system.stopService("gateway");
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor("the workers to exit", async () => (workers.every((pid) => !alive(pid)) ? true : undefined));
  });
});

/** POST on a connection of its own; `servedBy` is the answering worker's pid (x-clipper-worker). */
function postJsonFresh(url: string, body: unknown): Promise<{ json: Record<string, unknown>; servedBy: string }> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
            servedBy: String(res.headers["x-clipper-worker"] ?? ""),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(text);
  });
}
