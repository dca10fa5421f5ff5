// A real Prometheus (Debian's package) scraping the real services and model
// replicas with deploy/prometheus.yml's jobs (targets rewritten to this test's
// ports, the replicas found through the container-manager's file_sd file), the
// alert rules of deploy/prometheus/alerts.yml loaded in it, and every query of
// the Grafana dashboard run against it.
//
// Skipped when prometheus is not installed, unless CLIPPER_PROMETHEUS_TESTS=1
// (.ci/run sets it after installing the package): then it fails instead.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadYaml } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { buildServices, serviceNodeArgs } from "../../services/build.js";
import { postJson, pythonFileModel, repoRoot, TestSystem, waitFor, waitForListening } from "../system.js";
import { freeLoopbackPort, type PrometheusServer, type PromSample, prometheusVersion, startPrometheus, testConfig } from "./prometheus-server.js";

const prometheusRequired = process.env.CLIPPER_PROMETHEUS_TESTS === "1";
const installed = prometheusVersion();
const skip = installed === undefined && !prometheusRequired;
if (skip) {
  console.warn(
    "prometheus.integration.test.ts skipped: Debian's prometheus is not installed (apt-get install -y prometheus); " +
      "with CLIPPER_PROMETHEUS_TESTS=1 this is a failure instead",
  );
}

const INTERVAL = "1s";
const alertsFile = join(repoRoot, "deploy", "prometheus", "alerts.yml");
const dashboardFile = join(repoRoot, "deploy", "grafana", "clipper-dashboard.json");

interface Dashboard {
  templating: { list: Array<{ name: string; query: string | object }> };
  panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
}

/** Each alert of alerts.yml with its expression. */
function alertRules(): Array<{ alert: string; expr: string }> {
  const file = loadYaml<{ groups: Array<{ rules: Array<{ alert?: string; expr: string }> }> }>(readFileSync(alertsFile, "utf8"));
  return file.groups.flatMap((g) => g.rules.filter((r): r is { alert: string; expr: string } => r.alert !== undefined));
}

/** Metric names an expression reads: `clipper_*` identifiers and `up`, without PromQL's functions and keywords. */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\b(clipper_[a-z0-9_]+|up)\b(?!\s*\()/g)) names.add(m[1] as string);
  return [...names];
}

/** The single sample of an instant vector, with a failure naming the query when there is none or several. */
function only(samples: PromSample[], expr: string): PromSample {
  expect(samples, `${expr} should return exactly one series`).toHaveLength(1);
  return samples[0] as PromSample;
}

/**
 * The console process, scraped by the clipper-console job. Its page is not what this file tests: a one-file
 * build stands in for dist/console-ui.
 */
async function startConsole(system: TestSystem, dir: string): Promise<{ process: ChildProcess; address: string }> {
  await buildServices(repoRoot);
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>console</title>\n");
  const args = ["--host", "127.0.0.1", "--port", "0", "--registry", system.address("registry"), "--ui-dir", dir];
  args.push("--metrics-targets", `gateway=${system.gatewayUrl}/metrics`);
  const child = spawn(process.execPath, [...serviceNodeArgs(repoRoot, "console"), ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  const port = await waitForListening(child, "console", [], 30_000);
  return { process: child, address: `127.0.0.1:${port}` };
}

async function stopConsole(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

/** The series whose value is not a finite number (NaN from 0/0, or ±Inf), as text for a failure message. */
function notFinite(samples: PromSample[]): string[] {
  return samples.filter((x) => !Number.isFinite(Number(x.value[1]))).map((x) => `${JSON.stringify(x.metric)} = ${x.value[1]}`);
}

describe.skipIf(skip)(`a real Prometheus scrapes the system (${installed ?? "prometheus not installed"})`, () => {
  const system = new TestSystem();
  const consoleDir = mkdtempSync(join(tmpdir(), "clipper-prometheus-console-"));
  let consoleProcess: ChildProcess | undefined;
  let prometheus: PrometheusServer | undefined;
  const prom = () => {
    if (prometheus === undefined) throw new Error("prometheus did not start");
    return prometheus;
  };
  const predict = (app: string, body: unknown) => postJson(`${system.gatewayUrl}/${app}/predict`, body);

  /** Waits until every target of these jobs has been scraped, successfully, after `sinceMs`. */
  async function scrapedAfter(sinceMs: number, jobs: readonly string[]): Promise<void> {
    await waitFor(
      `a scrape of ${jobs.join(", ")} after the workload`,
      async () => {
        const targets = (await prom().targets()).filter((t) => jobs.includes(t.labels.job ?? ""));
        const fresh = targets.filter((t) => t.health === "up" && Date.parse(t.lastScrape) > sinceMs);
        return jobs.every((j) => targets.some((t) => t.labels.job === j)) && fresh.length === targets.length ? true : undefined;
      },
      20_000,
    );
  }

  beforeAll(async () => {
    if (installed === undefined) {
      throw new Error("CLIPPER_PROMETHEUS_TESTS=1 but prometheus is not installed (apt-get install -y prometheus)");
    }
    await system.start();
    const mgmt = system.management();
    await mgmt.createApplication({ name: "counted", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n });
    await mgmt.createApplication({ name: "cached", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n, cacheEnabled: true });
    await mgmt.createApplication({ name: "unlinked", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 1_000_000n });
    await system.deployApp("pids", pythonFileModel("pid-model", join(repoRoot, "test", "fixtures", "pid_model.py")), { sloMicros: 5_000_000n });
    await system.deploy(pythonFileModel("sum-model", join(repoRoot, "examples", "sum_model.py")));
    await mgmt.linkModel({ application: "counted", modelName: "sum-model" });
    await mgmt.linkModel({ application: "cached", modelName: "sum-model" });
    // A learning policy, for the feedback loss.
    await mgmt.createApplication({
      name: "learning",
      inputType: InputType.DOUBLES,
      defaultOutput: "-1",
      sloMicros: 5_000_000n,
      policy: { kind: { case: "exp3", value: { gamma: 0.1 } } },
    });
    await mgmt.linkModel({ application: "learning", modelName: "sum-model" });
    const consoleStarted = await startConsole(system, consoleDir);
    consoleProcess = consoleStarted.process;
    // Warm up through "cached" so that "counted" sees only the workload it counts.
    await waitFor("an answer from sum-model", async () => ((await predict("cached", { input: [0.5] })).json.default === false ? true : undefined));
    await waitFor("an answer from pid-model", async () => ((await predict("pids", { input: [1] })).json.default === false ? true : undefined));

    prometheus = await startPrometheus(
      testConfig({
        targets: {
          "clipper-gateway": system.address("gateway"),
          "clipper-registry": `127.0.0.1:${system.metricsPort("registry")}`,
          "clipper-router": `127.0.0.1:${system.metricsPort("router")}`,
          "clipper-container-manager": `127.0.0.1:${system.metricsPort("container-manager")}`,
          "clipper-console": consoleStarted.address,
        },
        fileSdFile: join(system.dataDir, "run", "replica-targets.json"),
        interval: INTERVAL,
      }),
    );
  }, 180_000);

  afterAll(async () => {
    await prometheus?.stop();
    await stopConsole(consoleProcess);
    await system.stop();
    rmSync(consoleDir, { recursive: true, force: true });
  }, 60_000);

  it("scrapes the four services, the console and each model replica, found through the file_sd file", async () => {
    const targets = await waitFor(
      "every target up",
      async () => {
        const all = await prom().targets();
        const replicas = all.filter((t) => t.labels.job === "clipper-replica");
        const models = new Set(replicas.map((t) => t.labels.model));
        return all.length === 7 && all.every((t) => t.health === "up") && models.has("sum-model") && models.has("pid-model") ? all : undefined;
      },
      30_000,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\ntargets: ${JSON.stringify(await prom().targets(), null, 1)}\n${prom().logTail()}`);
    });
    const byJob = (job: string) => targets.filter((t) => t.labels.job === job);
    expect(byJob("clipper-gateway")[0]?.scrapeUrl).toBe(`${system.gatewayUrl}/metrics`);
    expect(byJob("clipper-registry")[0]?.scrapeUrl).toBe(`http://127.0.0.1:${system.metricsPort("registry")}/metrics`);
    expect(byJob("clipper-router")[0]?.scrapeUrl).toBe(`http://127.0.0.1:${system.metricsPort("router")}/metrics`);
    expect(byJob("clipper-container-manager")[0]?.scrapeUrl).toBe(`http://127.0.0.1:${system.metricsPort("container-manager")}/metrics`);
    expect(byJob("clipper-console")[0]?.scrapeUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    // The console's own series, with the service label every service's registry adds.
    // (A scrape is counted once answered: the second scrape is the first to see one.)
    const consoleScrapes = await waitFor(
      "the console's count of its scrapes",
      async () => {
        const r = await prom().query('clipper_console_requests_total{job="clipper-console", route="metrics", status="200"}');
        return r.length > 0 ? r : undefined;
      },
      15_000,
    );
    expect(only(consoleScrapes, "console scrapes").metric).toMatchObject({ service: "console" });
    expect(Number(consoleScrapes[0]?.value[1])).toBeGreaterThan(0);
    const replicas = (await system.containerManager().listModelReplicas({ modelName: "sum-model" })).replicas;
    const sum = byJob("clipper-replica").find((t) => t.labels.model === "sum-model");
    expect(sum?.labels).toMatchObject({ version: "1", replica: replicas[0]?.id });
    // The replica's target is the metrics endpoint the container-manager reports.
    const info = only(await prom().query('clipper_replica_info{model="sum-model"}'), "clipper_replica_info");
    expect(sum?.scrapeUrl).toBe(`http://${info.metric.metrics_endpoint}/metrics`);
  }, 60_000);

  it("holds the series of a known workload with their labels and values", async () => {
    const modelInputs = 'sum(clipper_model_inputs_total{job="clipper-replica", model="sum-model", version="1", outcome="ok"})';
    await scrapedAfter(Date.now(), ["clipper-replica"]);
    const inputsBefore = Number(only(await prom().query(modelInputs), modelInputs).value[1]);

    // 5 single predictions and one batch of 3: 6 requests, 8 queries, 8 inputs through the model.
    for (let i = 0; i < 5; i++) expect((await predict("counted", { input: [i, 1] })).json.default).toBe(false);
    const batch = await predict("counted", { input_batch: [[1], [2], [3]] });
    expect(batch.status).toBe(200);
    const doneAt = Date.now();
    await scrapedAfter(doneAt, ["clipper-gateway", "clipper-router", "clipper-replica", "clipper-container-manager", "clipper-registry"]);

    const requests = only(await prom().query('clipper_gateway_requests_total{application="counted"}'), "gateway requests");
    expect(requests.metric).toEqual({
      __name__: "clipper_gateway_requests_total",
      job: "clipper-gateway",
      instance: system.address("gateway"),
      service: "gateway",
      application: "counted",
      protocol: "rest",
      outcome: "answered",
      code: "ok",
    });
    expect(requests.value[1]).toBe("6");
    const latencyCount = only(await prom().query('clipper_gateway_request_duration_seconds_count{application="counted"}'), "gateway latency");
    expect(latencyCount.value[1]).toBe("6");

    // Every outcome of a linked version exists from the link on, at 0 until it happens (rate() sees its first event).
    const idle = await prom().query('clipper_router_queries_total{application="counted", model="sum-model", reason!="predicted"}');
    expect(idle.map((x) => x.metric.reason).sort()).toEqual(
      ["batch_failed", "cancelled", "hopeless", "model_error", "no_replica", "overloaded", "refused", "slo_exceeded"].sort(),
    );
    expect(idle.map((x) => x.value[1])).toEqual(idle.map(() => "0"));
    const queries = only(await prom().query('clipper_router_queries_total{application="counted", reason="predicted"}'), "router queries");
    expect(queries.metric).toMatchObject({
      job: "clipper-router",
      service: "router",
      application: "counted",
      model: "sum-model",
      version: "1",
      outcome: "answered",
      reason: "predicted",
    });
    expect(queries.value[1]).toBe("8");
    expect(only(await prom().query('clipper_router_query_duration_seconds_count{application="counted"}'), "router latency").value[1]).toBe("8");

    // The replica's own series keep its labels (honor_labels) and carry the file_sd's replica label.
    const inputs = only(await prom().query('clipper_model_inputs_total{model="sum-model", outcome="ok"}'), "model inputs");
    expect(Object.keys(inputs.metric).filter((k) => k.startsWith("exported_"))).toEqual([]);
    expect(inputs.metric).toMatchObject({ job: "clipper-replica", model: "sum-model", version: "1" });
    expect(inputs.metric.replica).toMatch(/.+/);
    expect(Number(inputs.value[1]) - inputsBefore).toBe(8);

    const gauge = async (expr: string) => Number(only(await prom().query(expr), expr).value[1]);
    expect(await gauge('clipper_container_manager_replicas_ready{model="sum-model", version="1"}')).toBe(1);
    expect(await gauge('clipper_container_manager_replicas_desired{model="sum-model", version="1"}')).toBe(1);
    expect(await gauge('clipper_router_queue_capacity{model="sum-model", version="1"}')).toBe(10_000);
    expect(await gauge('clipper_router_queue_depth{model="sum-model", version="1"}')).toBe(0);
    expect(await gauge('clipper_router_inflight_batches{model="sum-model", version="1"}')).toBe(0);
    expect(await gauge("clipper_registry_revision")).toBeGreaterThan(0);
    // The gateway, the router and the container-manager each follow the registry.
    expect(await gauge("clipper_registry_watchers")).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it("sees the first query of a new application in rate(): its series exist at 0 from the link on", async () => {
    const mgmt = system.management();
    await mgmt.createApplication({ name: "fresh", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n });
    await mgmt.linkModel({ application: "fresh", modelName: "sum-model" });
    const predicted = 'clipper_router_queries_total{application="fresh", reason="predicted"}';
    await waitFor("fresh's series at 0 in Prometheus", async () => ((await prom().query(predicted))[0]?.value[1] === "0" ? true : undefined), 20_000);
    expect((await predict("fresh", { input: [2, 3] })).json.output).toBe(5);
    await scrapedAfter(Date.now(), ["clipper-router"]);
    // A series born at its first increment would read 1 in every sample: an increase of 0.
    const increase = `sum(increase(${predicted}[1m]))`;
    expect(Number(only(await prom().query(increase), increase).value[1])).toBeGreaterThan(0);
  }, 60_000);

  it("answers every query of the Grafana dashboard with finite values for what the workload exercised", async () => {
    // What the panels show that the workload so far lacks: defaults, cache hits, feedback, a restart, a failed start.
    // The gateway's request counters start to exist at their first increment, which rate() cannot see (the
    // router's exist from the link on): scrape "unlinked"'s and "learning"'s once before the rest.
    expect((await predict("unlinked", { input: [1] })).json.default).toBe(true);
    expect((await predict("learning", { input: [0] })).json.default).toBe(false);
    await scrapedAfter(Date.now(), ["clipper-gateway"]);
    for (let i = 0; i < 3; i++) expect((await predict("unlinked", { input: [1] })).json.default).toBe(true);
    for (let i = 0; i < 3; i++) expect((await predict("cached", { input: [7, 7] })).json.output).toBe(14);
    // Feedback for "learning" (exp3, 0/1 loss): one right answer (6 for 6), one wrong (3 for 5): a mean loss of 0.5.
    for (const [input, label] of [
      [[1, 2, 3], "6"],
      [[1, 1, 1], "5"],
    ] as const) {
      expect((await predict("learning", { input })).json.default).toBe(false);
      expect((await postJson(`${system.gatewayUrl}/learning/update`, { input, label })).json).toEqual({ accepted: true });
    }
    const pid = Number((await predict("pids", { input: [1] })).json.output);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, "SIGKILL");
    // Exits at once, before it is ever ready: three times, and the replica is FAILED.
    const broken = {
      name: "broken-model",
      version: "1",
      inputType: InputType.DOUBLES,
      desiredReplicas: 1,
      runtime: { kind: { case: "command" as const, value: { argv: [process.execPath, "-e", "process.exit(3)"], env: {}, workingDir: "" } } },
    };
    await expect(system.deploy(broken, 30)).rejects.toThrow();
    await waitFor("pid-model restarted", async () => {
      const r = await predict("pids", { input: [1] });
      return r.json.default === false && Number(r.json.output) !== pid ? true : undefined;
    });
    // The restarted replica's own series started at its first answer (the runtimes do not create them at 0):
    // scrape them once before the predictions its panels must see.
    await scrapedAfter(Date.now(), ["clipper-replica"]);
    for (let i = 0; i < 3; i++) await predict("pids", { input: [i] });

    const dashboard = JSON.parse(readFileSync(dashboardFile, "utf8")) as Dashboard;
    const variable = dashboard.templating.list.find((v) => v.name === "application");
    expect(variable?.query).toBe("label_values(clipper_gateway_requests_total, application)");
    expect(await prom().labelValues("application", "clipper_gateway_requests_total")).toEqual(expect.arrayContaining(["counted", "cached", "unlinked"]));

    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr.replaceAll("$application", ".*") })));
    expect(queries.length).toBeGreaterThanOrEqual(13);
    // Where the workload of this test was: its series must hold numbers. Others may be NaN, correctly: a ratio of
    // rates over a minute without traffic ("counted", whose workload may be older) or a model that never answered
    // (broken-model's batch sizes; its failed starts are exercised).
    const exercisedApps = new Set(["unlinked", "cached", "pids", "learning"]);
    const exercisedModels = new Set(["sum-model", "pid-model", "broken-model"]);
    const exercised = (x: PromSample) =>
      (x.metric.application === undefined || exercisedApps.has(x.metric.application)) && (x.metric.model === undefined || exercisedModels.has(x.metric.model));
    // Rates need two scrapes after the events, so ask again for a while; a wrong name or label never returns anything.
    const problemsOf = async (q: { panel: string; expr: string }) => {
      const samples = await prom().query(q.expr);
      const checked = samples.filter(exercised);
      if (checked.length === 0) return [`${q.panel}: ${q.expr}: no series for the exercised applications and models (${samples.length} in all)`];
      return notFinite(checked).map((bad) => `${q.panel}: ${q.expr}: ${bad}`);
    };
    const deadline = Date.now() + 20_000;
    let problems: string[] = [];
    for (;;) {
      problems = (await Promise.all(queries.map(problemsOf))).flat();
      if (problems.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(problems, "dashboard queries without a number where the workload was").toEqual([]);

    // The values the workload fixes.
    const lossPanel = queries.find((q) => q.panel.startsWith("Feedback loss"));
    const loss = (await prom().query(lossPanel?.expr ?? "absent")).filter((x) => x.metric.application === "learning");
    expect(loss.map((x) => [x.metric.model, Number(x.value[1])])).toEqual([["sum-model", 0.5]]);
    const judged = 'clipper_router_feedback_loss_count{application="learning"}';
    expect(only(await prom().query(judged), judged).value[1]).toBe("2");
    const hitRatio = 'sum(rate(clipper_router_queries_total{application="cached", reason="cached"}[1m])) > 0';
    expect(await prom().query(hitRatio)).toHaveLength(1);
  }, 120_000);

  it("loads every alert rule, evaluates it without error, and reads only metrics it scrapes", async () => {
    const expected = alertRules();
    expect(expected.length).toBeGreaterThanOrEqual(15);
    const rules = await waitFor(
      "every rule evaluated",
      async () => {
        const r = await prom().rules();
        return r.length === expected.length && r.every((x) => Date.parse(x.lastEvaluation) > 0) ? r : undefined;
      },
      15_000,
    );
    expect(rules.map((r) => r.name).sort()).toEqual(expected.map((r) => r.alert).sort());
    for (const r of rules) expect({ rule: r.name, health: r.health, lastError: r.lastError ?? "" }).toEqual({ rule: r.name, health: "ok", lastError: "" });

    const scraped = new Set(await prom().labelValues("__name__", '{job=~"clipper-.+"}'));
    const missing = expected.flatMap((r) =>
      metricNames(r.expr)
        .filter((name) => !scraped.has(name))
        .map((name) => `${r.alert}: ${name}`),
    );
    expect(missing, "metrics the alerts read that no target exports").toEqual([]);

    // The failed model and the application with no model are seen as such (pending: their `for:` is minutes).
    const alerts = await waitFor(
      "ClipperReplicaFailed and ClipperNoReplicaReady on broken-model, ClipperDefaultRateHigh on unlinked",
      async () => {
        const a = await prom().alerts();
        const names = new Set(a.map((x) => `${x.labels.alertname} ${x.labels.model ?? x.labels.application}`));
        const seen = ["ClipperReplicaFailed broken-model", "ClipperNoReplicaReady broken-model", "ClipperDefaultRateHigh unlinked"];
        return seen.every((n) => names.has(n)) ? a : undefined;
      },
      15_000,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}; active: ${JSON.stringify((await prom().alerts()).map((a) => a.labels))}`);
    });
    // A FAILED replica has no process: it leaves the file_sd file and Prometheus's targets, so ClipperReplicaFailed
    // comes alone, without ClipperReplicaMetricsDown for the same replica.
    const fileSd = JSON.parse(readFileSync(join(system.dataDir, "run", "replica-targets.json"), "utf8")) as Array<{ labels: Record<string, string> }>;
    expect(fileSd.map((t) => t.labels.model).sort()).toEqual(["pid-model", "sum-model"]);
    await waitFor(
      "broken-model gone from Prometheus's targets",
      async () => ((await prom().targets()).some((t) => t.labels.model === "broken-model") ? undefined : true),
      15_000,
    );
    const evaluatedAfter = Date.now();
    await waitFor(
      "three more evaluations",
      async () => ((await prom().rules()).every((r) => Date.parse(r.lastEvaluation) > evaluatedAfter + 3_000) ? true : undefined),
      20_000,
    );
    const brokenAlerts = (await prom().alerts()).filter((a) => a.labels.model === "broken-model").map((a) => a.labels.alertname);
    expect(brokenAlerts).not.toContain("ClipperReplicaMetricsDown");
    expect(brokenAlerts).toEqual(expect.arrayContaining(["ClipperReplicaFailed", "ClipperNoReplicaReady"]));
    expect(await prom().query('up{job="clipper-replica"} == 0')).toEqual([]);
    // Nothing else, but for pid-model (killed above: its queries got defaults meanwhile) and a loaded machine's event loop.
    const unexpected = alerts.filter(
      (a) =>
        a.labels.model !== "broken-model" &&
        a.labels.model !== "pid-model" &&
        a.labels.application !== "unlinked" &&
        a.labels.application !== "pids" &&
        a.labels.alertname !== "ClipperEventLoopLagHigh",
    );
    expect(unexpected.map((a) => a.labels)).toEqual([]);
  }, 60_000);

  it("raises ClipperRegistryDown once the registry is gone", async () => {
    await system.stopService("registry");
    const alert = await waitFor(
      "ClipperRegistryDown pending",
      async () => (await prom().alerts()).find((a) => a.labels.alertname === "ClipperRegistryDown"),
      15_000,
    );
    expect(alert.labels).toMatchObject({ job: "clipper-registry", severity: "critical" });
    expect(Number(only(await prom().query('up{job="clipper-registry"}'), "up").value[1])).toBe(0);
  }, 30_000);
});

// `clipper up`'s layout: the router inside the gateway, nothing on the router's metrics port.
describe.skipIf(skip)("a real Prometheus and the router inside the gateway", () => {
  const system = new TestSystem({ routerInProcess: true });
  let prometheus: PrometheusServer | undefined;
  const prom = () => {
    if (prometheus === undefined) throw new Error("prometheus did not start");
    return prometheus;
  };

  beforeAll(async () => {
    if (installed === undefined) {
      throw new Error("CLIPPER_PROMETHEUS_TESTS=1 but prometheus is not installed (apt-get install -y prometheus)");
    }
    await system.start();
    prometheus = await startPrometheus(
      testConfig({
        targets: {
          "clipper-gateway": system.address("gateway"),
          "clipper-registry": `127.0.0.1:${system.metricsPort("registry")}`,
          "clipper-router": `127.0.0.1:${await freeLoopbackPort()}`,
          "clipper-container-manager": `127.0.0.1:${system.metricsPort("container-manager")}`,
          // No console in this layout's test: its target is down, which no alert reads.
          "clipper-console": `127.0.0.1:${await freeLoopbackPort()}`,
        },
        fileSdFile: join(system.dataDir, "run", "replica-targets.json"),
        interval: INTERVAL,
      }),
    );
  }, 120_000);

  afterAll(async () => {
    await prometheus?.stop();
    await system.stop();
  }, 60_000);

  it("finds the router's series on the gateway's target, and keeps ClipperRouterDown silent", async () => {
    const [cache, routerUp] = await waitFor(
      "the router's series on the gateway's target, and a scrape of the router's own",
      async () => {
        const c = await prom().query('clipper_router_cache_entries{job="clipper-gateway"}');
        const u = await prom().query('up{job="clipper-router"}');
        return c.length > 0 && u.length > 0 ? [c, u] : undefined;
      },
      20_000,
    );
    expect(only(cache, "cache entries").metric).toMatchObject({ service: "gateway", instance: system.address("gateway") });
    // The router's own target is down, which alone would raise the alert.
    expect(Number(only(routerUp, "router up").value[1])).toBe(0);
    // Several evaluations after both were seen (1 s apart), the alert is not even pending.
    const seenAt = Date.now();
    await waitFor(
      "three rule evaluations",
      async () => {
        const rule = (await prom().rules()).find((r) => r.name === "ClipperRouterDown");
        return rule !== undefined && Date.parse(rule.lastEvaluation) > seenAt + 3_000 ? rule : undefined;
      },
      20_000,
    );
    expect((await prom().alerts()).filter((a) => a.labels.alertname === "ClipperRouterDown")).toEqual([]);
  }, 60_000);
});
