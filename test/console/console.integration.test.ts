// The operator's console in a real browser (Debian's chromium driven by playwright-core) against the real
// system: the registry, container-manager and gateway (router inside) with API tokens, a TypeScript model's
// replica, and the console process, all on loopback. Writes screenshots of the main views to docs/console/.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { buildConsoleUi, buildServices, serviceNodeArgs } from "../../services/build.js";
import { clientSecurity, createGrpcTransport, createTokenInFile, type GrpcTransport } from "../../services/shared/index.js";
import { repoRoot, TestSystem, typescriptSumModel, waitFor, waitForListening } from "../system.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = path.join(repoRoot, "docs", "console");
// The flags the machine notes give: without the background-networking ones chromium keeps dialling Google's hosts.
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const readyReplicas = async (registry: Client<typeof ManagementService>) => {
  const { replicaSets } = await registry.listReplicas({ modelName: "sum-model", modelVersion: "1" });
  return replicaSets.flatMap((s) => s.replicas).filter((r) => r.state === ReplicaState.READY);
};

describe.skipIf(!fs.existsSync(CHROMIUM))("the operator's console in a browser", () => {
  const dir = fs.mkdtempSync(path.join(tmpdir(), "clipper-console-"));
  const tokensFile = path.join(dir, "tokens");
  const tokens = {
    admin: createTokenInFile(tokensFile, "admin", "ops"),
    reader: createTokenInFile(tokensFile, "read-only", "dashboard"),
    console: createTokenInFile(tokensFile, "read-only", "console"),
    // Service, not read-only: learning from feedback writes the policy's state (UpdatePolicyState).
    router: createTokenInFile(tokensFile, "service", "router"),
    manager: createTokenInFile(tokensFile, "service", "container-manager"),
  };
  const system = new TestSystem({
    routerInProcess: true,
    args: {
      registry: ["--tokens-file", tokensFile],
      "container-manager": ["--tokens-file", tokensFile, "--service-token", tokens.manager],
      gateway: ["--service-token", tokens.router],
    },
  });
  const transports: GrpcTransport[] = [];
  let consoleProcess: ChildProcess | undefined;
  let consoleUrl = "";
  let context: BrowserContext;
  /** Every console message of type error and every uncaught page error, from every page. */
  const pageErrors: string[] = [];
  let registry: Client<typeof ManagementService>;

  const transport = (address: string, token: string) => {
    const t = createGrpcTransport({ address, ...clientSecurity({ token }) });
    transports.push(t);
    return t;
  };

  const openPage = async (token: string): Promise<Page> => {
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(`${m.text()} (${m.location().url})`);
    });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${consoleUrl}/#token=${encodeURIComponent(token)}`);
    return page;
  };

  beforeAll(async () => {
    await Promise.all([buildServices(repoRoot), buildConsoleUi(repoRoot)]);
    await system.start();
    registry = createClient(ManagementService, transport(system.address("registry"), tokens.admin));
    const manager = createClient(ContainerManagerService, transport(system.address("container-manager"), tokens.admin));
    await registry.createApplication({ name: "hello", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 100_000n, description: "sums its inputs" });
    for await (const _progress of manager.deployModel({ model: typescriptSumModel(), setCurrent: true, timeoutSeconds: 90 })) {
      // until READY
    }
    await registry.linkModel({ application: "hello", modelName: "sum-model" });

    const targets = [
      `gateway=${system.gatewayUrl}/metrics`,
      `registry=http://127.0.0.1:${system.metricsPort("registry")}/metrics`,
      `container-manager=http://127.0.0.1:${system.metricsPort("container-manager")}/metrics`,
    ].join(",");
    const args = ["--host", "127.0.0.1", "--port", "0", "--registry", system.address("registry"), "--metrics-targets", targets];
    args.push("--container-manager", system.address("container-manager"));
    args.push("--tokens-file", tokensFile, "--scrape-interval-ms", "500", "--rate-window-ms", "2000");
    consoleProcess = spawn(process.execPath, [...serviceNodeArgs(repoRoot, "console"), ...args], {
      cwd: repoRoot,
      env: { ...process.env, CLIPPER_CONSOLE_TOKEN: tokens.console },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const port = await waitForListening(consoleProcess, "console", [], 30_000);
    consoleUrl = `http://127.0.0.1:${port}`;

    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    context = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(dir, "chromium-")), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1360, height: 900 },
    });
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    if (consoleProcess !== undefined && consoleProcess.exitCode === null) {
      const exited = new Promise((resolve) => consoleProcess?.once("exit", resolve));
      consoleProcess.kill("SIGTERM");
      await exited;
    }
    for (const t of transports) t.close();
    await system.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("refuses its API without a token the tokens file knows", async () => {
    const none = await fetch(`${consoleUrl}/api/state`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toMatch(/needs an API token/);
    const unknown = await fetch(`${consoleUrl}/api/state`, { headers: { authorization: "Bearer clp_nobody" } });
    expect(unknown.status).toBe(401);
  });

  it("loads with no console errors and shows the deployed model, its replica and the replica's log", async () => {
    const page = await openPage(tokens.admin);
    const [replica] = await readyReplicas(registry);
    expect(replica).toBeDefined();
    const app = page.getByTestId("app-hello");
    await app.waitFor({ timeout: 20_000 });
    await expect.poll(() => app.textContent()).toContain("sum-model");
    expect(await app.textContent()).toContain("SLO 100 ms");
    const model = page.getByTestId("model-sum-model-1");
    const row = model.locator(`[data-testid=replica][data-endpoint="${replica?.endpoint}"]`);
    await row.waitFor({ timeout: 20_000 });
    expect(await row.getAttribute("data-state")).toBe("ready");
    expect(await row.textContent()).toContain(replica?.id ?? "?");
    expect(await model.getByTestId("replica-count").textContent()).toBe("1/1 ready");
    expect(await page.getByTestId("role").textContent()).toBe("admin: ops");
    // The replica's log lines, from the container-manager with the operator's token.
    await row.getByTestId("show-logs").click();
    await expect.poll(() => model.getByTestId("replica-logs").textContent(), { timeout: 10_000 }).toMatch(/manager starting /);
    // Every metrics target answered the console's scrape.
    for (const name of ["gateway", "registry", "container-manager"]) {
      await expect.poll(() => page.getByTestId(`target-${name}`).getAttribute("class"), { timeout: 10_000 }).toContain("good");
    }
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it("shows a chart's numbers rise under a short load", async () => {
    const page = await openPage(tokens.admin);
    const throughput = page.getByTestId("hello-throughput");
    await throughput.waitFor({ timeout: 20_000 });
    const value = async () => Number((await throughput.getAttribute("data-value")) || "0");
    expect(await value()).toBeLessThan(1);
    const stop = Date.now() + 6000;
    let answered = 0;
    const client = async () => {
      while (Date.now() < stop) {
        const res = await fetch(`${system.gatewayUrl}/hello/predict`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ input: [1, 2, 3] }),
        });
        if (((await res.json()) as { output?: unknown }).output === 6) answered++;
      }
    };
    const load = Promise.all([client(), client(), client(), client()]);
    await expect.poll(value, { timeout: 15_000, message: "queries/s on the page" }).toBeGreaterThan(5);
    const p50 = Number(await page.getByTestId("hello-p50").getAttribute("data-value"));
    expect(p50).toBeGreaterThan(0);
    expect(p50).toBeLessThan(0.1);
    await load;
    expect(answered).toBeGreaterThan(20);
    await page.getByTestId("app-hello").screenshot({ path: path.join(SCREENSHOTS, "application.png") });
    await page.screenshot({ path: path.join(SCREENSHOTS, "overview.png"), fullPage: true });
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("scales a model from the page, and the registry reports the new replica count", async () => {
    const page = await openPage(tokens.admin);
    const model = page.getByTestId("model-sum-model-1");
    await model.waitFor({ timeout: 20_000 });
    await model.getByTestId("scale-input").fill("2");
    // The deploy's progress shows while the second replica starts (set up before the click: it lasts a second or two).
    const progress = page.getByTestId("deploy-sum-model-1");
    const progressSeen = progress.waitFor({ timeout: 30_000 }).then(async () => (await progress.getByTestId("deploy-counts").textContent()) ?? "");
    await model.getByTestId("scale-button").click();
    expect(await progressSeen).toMatch(/^[01]\/2 ready/);
    await expect.poll(() => page.getByTestId("status").textContent()).toBe("sum-model:1 scaled to 2");
    const desired = async () => (await registry.getModel({ name: "sum-model", version: "1" })).model?.desiredReplicas;
    expect(await desired()).toBe(2);
    await waitFor("two ready replicas in the registry", async () => ((await readyReplicas(registry)).length === 2 ? true : undefined), 90_000);
    await expect.poll(() => model.getByTestId("replica-count").textContent(), { timeout: 20_000 }).toBe("2/2 ready");
    expect(await model.getByTestId("replica").count()).toBe(2);
    // Done: nothing in flight any more.
    await page.getByTestId("no-deploys").waitFor({ timeout: 10_000 });
    await model.screenshot({ path: path.join(SCREENSHOTS, "model.png") });
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it("changes the selection policy from the page, and draws what the policy learned", async () => {
    const page = await openPage(tokens.admin);
    const app = page.getByTestId("app-hello");
    await app.waitFor({ timeout: 20_000 });
    await app.getByLabel("selection policy").selectOption("exp3");
    await app.getByLabel("policy parameter").fill("0.2");
    await app.getByRole("button", { name: "Set policy" }).click();
    await expect.poll(() => page.getByTestId("status").textContent()).toBe("policy set to exp3");
    const policy = (await registry.getApplication({ name: "hello" })).application?.policy?.kind;
    expect(policy).toMatchObject({ case: "exp3", value: { gamma: 0.2 } });
    await app.getByTestId("policy-chart").waitFor({ timeout: 10_000 });
    expect(await app.getByTestId("policy-chart").textContent()).toContain("Selection probability (exp3)");
    // One linked model: exp3 draws it every time.
    await expect.poll(async () => Number(await app.getByTestId("hello-policy-sum-model").getAttribute("data-value")), { timeout: 10_000 }).toBe(1);

    // Feedback: the router judges sum-model's outputs against the labels (0/1 loss), and the page shows the mean.
    const post = (route: string, body: unknown) =>
      fetch(`${system.gatewayUrl}/hello/${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const feedback = async (input: number[], label: string) => {
      expect((await post("predict", { input })).status).toBe(200);
      expect((await post("update", { input, label })).status).toBe(200);
    };
    // The router's own count of judged outputs (it keeps outputs to judge only once it has heard of exp3).
    const judged = async () => {
      const text = await (await fetch(`${system.gatewayUrl}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith("clipper_router_feedback_loss_count{") && l.includes('application="hello",model="sum-model"'));
      return Number(line?.split(" ").at(-1) ?? "0");
    };
    // Right answers (6 for 6) until the router judges one, then as many wrong ones (3 for 5): a mean of exactly 0.5.
    const right = await waitFor(
      "a judged output",
      async () => {
        await feedback([1, 2, 3], "6");
        const n = await judged();
        return n > 0 ? n : undefined;
      },
      15_000,
    );
    for (let i = 0; i < right; i++) await feedback([1, 1, 1], "5");
    expect(await judged()).toBe(2 * right);
    const loss = app.getByTestId("hello-loss-sum-model");
    await expect.poll(() => loss.getAttribute("data-value"), { timeout: 10_000 }).toBe("0.5");
    expect(await loss.textContent()).toBe(`0.50loss: sum-model (${2 * right} judged)`);
    await app.getByTestId("loss-chart").waitFor({ timeout: 10_000 });
    expect(await app.getByTestId("loss-chart").textContent()).toContain("Feedback loss (mean)");
    expect(await loss.getAttribute("title")).toMatch(/^mean loss of the outputs judged in the last window: (0\.50|none judged)$/);
    // A few frames more, so that the screenshot's chart has a line.
    await page.waitForTimeout(2000);
    await app.screenshot({ path: path.join(SCREENSHOTS, "feedback-loss.png") });
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("gives a read-only token no way to act: disabled controls that say why, and the registry's refusal as 403", async () => {
    const page = await openPage(tokens.reader);
    const banner = page.getByTestId("readonly-banner");
    await banner.waitFor({ timeout: 20_000 });
    expect(await banner.textContent()).toMatch(/"dashboard" has the read-only role: it sees everything and changes nothing/);
    const model = page.getByTestId("model-sum-model-1");
    await model.waitFor({ timeout: 20_000 });
    const scale = model.getByTestId("scale-button");
    expect(await scale.isDisabled()).toBe(true);
    expect(await scale.getAttribute("title")).toMatch(/read-only role/);
    expect(await page.getByTestId("app-hello").getByTestId("delete-app").isDisabled()).toBe(true);
    expect(await page.getByTestId("create-app").locator("button").isDisabled()).toBe(true);
    // The server refuses anyway, as a hand-made request with the read-only token shows (from here: the page's
    // own fetch would log the refusal as a console error).
    const put = await fetch(`${consoleUrl}/api/models/sum-model/versions/1/replicas`, {
      method: "PUT",
      headers: { authorization: `Bearer ${tokens.reader}`, "content-type": "application/json" },
      body: JSON.stringify({ replicas: 5 }),
    });
    const refused = { status: put.status, body: (await put.json()) as { error: string; code?: string } };
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: "PermissionDenied" });
    expect(refused.body.error).toMatch(/token "dashboard" \(role read-only\) may not call clipper.v1.ManagementService\/UpdateModel/);
    const deleted = await fetch(`${consoleUrl}/api/applications/hello`, { method: "DELETE", headers: { authorization: `Bearer ${tokens.reader}` } });
    expect(deleted.status).toBe(403);
    expect((await registry.getModel({ name: "sum-model", version: "1" })).model?.desiredReplicas).toBe(2);
    expect((await registry.getApplication({ name: "hello" })).application?.name).toBe("hello");
    await page.screenshot({ path: path.join(SCREENSHOTS, "read-only.png") });
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("turns a replica red within seconds when its process is killed", async () => {
    const page = await openPage(tokens.admin);
    const model = page.getByTestId("model-sum-model-1");
    await expect.poll(() => model.getByTestId("replica-count").textContent(), { timeout: 20_000 }).toBe("2/2 ready");
    // The container-manager's ledger of the replica processes it runs, by replica id.
    const ledger = JSON.parse(fs.readFileSync(path.join(system.dataDir, "run", "replica-processes.json"), "utf8")) as Record<string, { pid: number }>;
    const [victimId, victim] = Object.entries(ledger)[0] ?? [];
    if (victim === undefined) throw new Error("no replica process in the ledger");
    // By id: a restarted replica keeps its id and gets a new port.
    const red = model.locator(`[data-testid=replica]:is([data-state=unhealthy],[data-state=failed]):has-text("${victimId}")`);
    // The wait is in place before the kill: the red state lasts only until the container-manager restarts it (500 ms).
    const turnedRed = red.waitFor({ timeout: 10_000 }).then(() => Date.now());
    const killedAt = Date.now();
    process.kill(victim.pid, "SIGKILL");
    const redAfterMs = (await turnedRed) - killedAt;
    expect(redAfterMs).toBeLessThan(5000);
    await page.screenshot({ path: path.join(SCREENSHOTS, "replica-down.png"), fullPage: true });
    // Restarted by the container-manager: green again, its restart counted.
    const row = model.locator(`[data-testid=replica]:has-text("${victimId}")`);
    await expect.poll(() => row.getAttribute("data-state"), { timeout: 60_000 }).toBe("ready");
    expect(await row.locator("td").nth(4).textContent()).toBe("1");
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it("shows a deploy in flight and why it failed: a new version whose process exits before it is ever ready", async () => {
    const page = await openPage(tokens.admin);
    await page.getByTestId("no-deploys").waitFor({ timeout: 20_000 });
    const manager = createClient(ContainerManagerService, transport(system.address("container-manager"), tokens.admin));
    const broken = {
      name: "sum-model",
      version: "2",
      inputType: InputType.DOUBLES,
      desiredReplicas: 1,
      runtime: {
        kind: {
          case: "command" as const,
          value: { argv: [process.execPath, "-e", "console.error('no weights here'); process.exit(3)"], env: {}, workingDir: "" },
        },
      },
    };
    const deploy = (async () => {
      for await (const _progress of manager.deployModel({ model: broken, setCurrent: true, timeoutSeconds: 60 })) {
        // until it fails
      }
    })();
    const row = page.getByTestId("deploy-sum-model-2");
    await row.waitFor({ timeout: 20_000 });
    // Version 1 keeps serving while version 2 tries, and after it failed.
    expect(await row.textContent()).toContain("not current: version 1 serves");
    await expect(deploy).rejects.toThrow();
    await expect.poll(() => row.getAttribute("data-phase"), { timeout: 30_000 }).toBe("failed");
    expect(await row.getByTestId("deploy-counts").textContent()).toBe("0/1 ready, 1 failed");
    // The reason is the replica's last message from the container-manager.
    const { replicaSets } = await registry.listReplicas({ modelName: "sum-model", modelVersion: "2" });
    const message = replicaSets.flatMap((s) => s.replicas)[0]?.message ?? "";
    expect(message).not.toBe("");
    await expect.poll(() => row.getByTestId("deploy-reason").textContent(), { timeout: 10_000 }).toBe(message);
    await page.getByTestId("deploys").screenshot({ path: path.join(SCREENSHOTS, "deploy-failed.png") });
    expect((await registry.getModel({ name: "sum-model", version: "1" })).model?.name).toBe("sum-model");
    await page.close();
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
