/** The operator's console: the page's entry point (built by Vite into dist/console-ui). */
import type { ConsoleState, MetricsFrame, SessionInfo } from "../../services/console/console-api.js";
import { ApiFailure, ConsoleApi, storeToken, takeToken } from "./api.js";
import { ApplicationsView, createApplicationForm } from "./applications-view.js";
import { DeploysView } from "./deploys-view.js";
import { fill, h } from "./dom.js";
import { formatPercent } from "./format.js";
import { ModelsView } from "./models-view.js";
import type { PageContext } from "./page-context.js";
import { FrameHistory } from "./series.js";
import "./style.css";

let token = takeToken();
const api = new ConsoleApi(() => token);
let session: SessionInfo | undefined;
let state: ConsoleState | undefined;
const history = new FrameHistory(600);

const status = h("div", { class: "status", role: "status", "data-testid": "status" });
const connection = h("span", { class: "pill", "data-testid": "connection" }, "connecting…");
const targets = h("span", { class: "targets" });
const cache = h("span", { class: "pill", title: "prediction cache hits over lookups, last window" });
const who = h("span", { class: "who" });
const banner = h("div", { class: "banner", hidden: true, "data-testid": "readonly-banner" });
const createSlot = h("div");

function showStatus(text: string, bad: boolean): void {
  status.textContent = text;
  status.className = `status ${bad ? "bad" : "good"}`;
}

const page: PageContext = {
  session: () => session,
  frames: () => history.all(),
  get: (path) => api.call("GET", path),
  modelNames: () => [...new Set((state?.models ?? []).map((m) => m.name))],
  writeAttributes: () =>
    session === undefined || session.canWrite ? {} : { disabled: true, title: session.readOnlyReason ?? "this token may not change anything" },
  act: async (done, method, path, body) => {
    try {
      const answer = await api.call<{ state: ConsoleState }>(method, path, body);
      showStatus(done, false);
      applyState(answer.state);
      return true;
    } catch (err) {
      showStatus(err instanceof ApiFailure ? `${err.status}: ${err.message}` : String(err), true);
      return false;
    }
  },
};

const applications = new ApplicationsView(page);
const models = new ModelsView(page);
const deploys = new DeploysView();

function applyState(next: ConsoleState): void {
  // A mutation's answer and the stream may cross: never go back to an older revision.
  if (state !== undefined && BigInt(next.revision) < BigInt(state.revision)) return;
  state = next;
  connection.textContent = next.registryConnected ? `registry: live (revision ${next.revision})` : "registry: unreachable (last known state)";
  connection.className = `pill ${next.registryConnected ? "good" : "bad"}`;
  applications.render(next.applications);
  deploys.render(next.models);
  models.render(next.models);
}

function applyFrame(frame: MetricsFrame): void {
  history.push(frame);
  showFrame();
}

function showFrame(): void {
  const latest = history.latest();
  if (latest === undefined) return;
  fill(
    targets,
    ...latest.targets.map((t) =>
      h("span", { class: `pill ${t.up ? "good" : "bad"}`, title: t.up ? t.url : `${t.url}: ${t.error ?? "down"}`, "data-testid": `target-${t.name}` }, t.name),
    ),
  );
  cache.textContent = `cache hits ${formatPercent(latest.cacheHitRatio)}`;
  applications.frame(history.all());
  models.frame(history.all());
}

function showSession(): void {
  const input = h("input", { type: "password", placeholder: "API token", "aria-label": "API token", value: token, autocomplete: "off" });
  const form = h("form", { class: "inline-form" }, input, h("button", { type: "submit" }, "Use token"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    token = input.value.trim();
    storeToken(token);
    location.reload();
  });
  const role =
    session === undefined
      ? null
      : h(
          "span",
          { class: `pill ${session.canWrite ? "good" : "warn"}`, "data-testid": "role" },
          session.role === "open" ? "no tokens: open" : `${session.role}: ${session.name}`,
        );
  // The field stays in open mode too: a console without a tokens file may still front a registry that has one.
  fill(who, role, form);
  banner.hidden = session === undefined || session.canWrite;
  banner.textContent = session?.readOnlyReason ?? "";
  fill(createSlot, session === undefined ? null : createApplicationForm(page));
}

function layout(): void {
  const app = document.getElementById("app");
  if (app === null) return;
  fill(
    app,
    h(
      "header",
      { class: "top" },
      h("h1", {}, "Clipper", h("span", { class: "muted" }, " console")),
      connection,
      targets,
      cache,
      h("span", { class: "grow" }),
      who,
    ),
    banner,
    status,
    h(
      "main",
      {},
      h("h2", {}, "Deploys in progress"),
      deploys.root,
      h("h2", {}, "Applications"),
      createSlot,
      applications.root,
      h("h2", {}, "Models"),
      models.root,
    ),
  );
}

async function follow(): Promise<void> {
  let delayMs = 250;
  for (;;) {
    const controller = new AbortController();
    try {
      await api.follow(
        {
          hello: (hello) => {
            history.replace(hello.history);
            applyState(hello.state);
            showFrame();
            delayMs = 250;
          },
          state: applyState,
          frame: applyFrame,
        },
        controller.signal,
      );
      connection.textContent = "console: reconnecting…";
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 401) {
        showStatus(`${err.message}: enter a token`, true);
        return;
      }
      connection.textContent = "console: unreachable, retrying…";
      connection.className = "pill bad";
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, 5000);
  }
}

async function start(): Promise<void> {
  layout();
  try {
    session = await api.session();
  } catch (err) {
    session = undefined;
    showSession();
    showStatus(err instanceof ApiFailure ? `${err.message}` : `the console is unreachable: ${String(err)}`, true);
    return;
  }
  showSession();
  window.addEventListener("resize", () => showFrame());
  await follow();
}

void start();
