/** The applications: what each is, its live numbers and charts, and what an admin may change. */
import type { ApplicationJson, MetricsFrame, PolicyJson } from "../../services/console/console-api.js";
import { LineChart } from "./charts.js";
import { fill, h } from "./dom.js";
import { formatMicros, formatPercent, formatRate, formatSeconds } from "./format.js";
import type { PageContext } from "./page-context.js";

/** What a learning policy's numbers mean (the console computes them from its state: services/console/policy-weights.ts). */
const POLICY_MEASURES: Partial<Record<PolicyJson["kind"], string>> = {
  exp3: "Selection probability (exp3)",
  exp4: "Ensemble weight (exp4)",
  epsilon_greedy: "Mean reward (ε-greedy)",
  thompson: "Posterior mean reward (Thompson)",
};
const MODEL_COLORS = ["#58a6ff", "#3fb950", "#d29922", "#a371f7", "#f778ba", "#79c0ff", "#56d364", "#e3b341"];

const POLICY_KINDS: PolicyJson["kind"][] = ["single", "split", "exp3", "exp4", "epsilon_greedy", "thompson"];

export function policyText(p: PolicyJson): string {
  switch (p.kind) {
    case "split":
      return `split ${Object.entries(p.weights)
        .map(([k, w]) => `${k}=${w}`)
        .join(" ")}`;
    case "exp3":
      return `exp3 γ=${p.gamma || 0.1}`;
    case "exp4":
      return `exp4 η=${p.eta || 0.5}`;
    case "epsilon_greedy":
      return `ε-greedy ε=${p.epsilon}`;
    default:
      return p.kind;
  }
}

/** The policy a kind chosen in the form stands for, with the defaults the registry documents. */
function policyOf(kind: string, parameter: string, linked: readonly string[]): PolicyJson {
  const n = Number(parameter);
  switch (kind) {
    case "split":
      return { kind: "split", weights: Object.fromEntries(linked.map((m) => [m, 1])) };
    case "exp3":
      return { kind: "exp3", gamma: parameter === "" ? 0.1 : n };
    case "exp4":
      return { kind: "exp4", eta: parameter === "" ? 0.5 : n };
    case "epsilon_greedy":
      return { kind: "epsilon_greedy", epsilon: parameter === "" ? 0.1 : n };
    case "thompson":
      return { kind: "thompson" };
    default:
      return { kind: "single" };
  }
}

class ApplicationCard {
  readonly root: HTMLElement;
  private readonly info = h("div", { class: "card-info" });
  private readonly numbers = h("div", { class: "numbers" });
  private readonly charts: LineChart[] = [];
  private readonly chartBox = h("div", { class: "charts" });
  /**
   * A learning policy's charts, its numbers and each model's feedback loss, rebuilt when the policy or the linked
   * models change (their lines are the models).
   */
  private policyCharts: { key: string; charts: Array<{ chart: LineChart; box: HTMLElement }> } | undefined;
  private shown = "";

  constructor(
    private app: ApplicationJson,
    private readonly page: PageContext,
  ) {
    const name = app.name;
    const chartBox = this.chartBox;
    this.root = h("section", { class: "card", "data-testid": `app-${name}` }, this.info, this.numbers, chartBox);
    const a = (f: MetricsFrame) => f.applications[name];
    const specs = [
      {
        title: "Throughput",
        lines: [{ label: "queries/s", color: "#58a6ff", pick: (f: MetricsFrame) => a(f)?.throughput }],
        format: (v: number) => formatRate(v),
        minMax: 1,
      },
      {
        title: "Latency against the SLO",
        lines: [
          { label: "p50", color: "#3fb950", pick: (f: MetricsFrame) => a(f)?.p50 },
          { label: "p99", color: "#d29922", pick: (f: MetricsFrame) => a(f)?.p99 },
          { label: "SLO", color: "#f85149", dash: true, pick: () => this.app.sloMicros / 1e6 },
        ],
        format: (v: number) => formatSeconds(v),
        minMax: 0.001,
      },
      {
        title: "Default and error rates",
        lines: [
          { label: "default", color: "#d29922", pick: (f: MetricsFrame) => a(f)?.defaultRate },
          { label: "error", color: "#f85149", pick: (f: MetricsFrame) => a(f)?.errorRate },
        ],
        format: (v: number) => formatPercent(v),
        minMax: 0.05,
      },
    ];
    for (const spec of specs) {
      const box = h("div", { class: "chart" });
      chartBox.append(box);
      this.charts.push(new LineChart(box, spec));
    }
    this.render(app);
  }

  render(app: ApplicationJson): void {
    this.app = app;
    this.renderPolicyChart(app);
    const key = JSON.stringify([app, this.page.session(), this.page.modelNames()]);
    if (key === this.shown) return;
    this.shown = key;
    const write = this.page.writeAttributes();
    const unlinked = this.page.modelNames().filter((m) => !app.linkedModels.includes(m));
    const linkSelect = h("select", { "aria-label": "model to link", ...write }, ...unlinked.map((m) => h("option", { value: m }, m)));
    const policySelect = h(
      "select",
      { "aria-label": "selection policy", ...write },
      ...POLICY_KINDS.map((k) => h("option", { value: k, selected: k === app.policy.kind }, k)),
    );
    const policyParameter = h("input", { class: "narrow", placeholder: "γ / η / ε", "aria-label": "policy parameter", ...write });
    fill(
      this.info,
      h(
        "header",
        { class: "card-head" },
        h("h3", {}, app.name),
        h("span", { class: "pill" }, app.inputType),
        h("span", { class: "pill", title: "latency objective" }, `SLO ${formatMicros(app.sloMicros)}`),
        h("span", { class: "pill", title: "answered when no model answers in time" }, `default ${JSON.stringify(app.defaultOutput)}`),
        h("span", { class: "pill", title: "selection policy" }, policyText(app.policy)),
        app.cacheEnabled ? h("span", { class: "pill" }, "cache") : null,
        h("span", { class: "grow" }),
        h(
          "button",
          {
            class: "danger",
            ...write,
            "data-testid": "delete-app",
            onclick: () => {
              if (confirm(`Delete the application ${app.name}?`))
                void this.page.act(`deleted ${app.name}`, "DELETE", `/api/applications/${encodeURIComponent(app.name)}`);
            },
          },
          "Delete",
        ),
      ),
      app.description === "" ? null : h("p", { class: "muted" }, app.description),
      h(
        "div",
        { class: "row" },
        h("span", { class: "label" }, "Linked models"),
        ...app.linkedModels.map((m) =>
          h(
            "span",
            { class: "chip" },
            m,
            h(
              "button",
              {
                class: "chip-x",
                title: `unlink ${m}`,
                ...write,
                onclick: () =>
                  void this.page.act(`unlinked ${m}`, "DELETE", `/api/applications/${encodeURIComponent(app.name)}/links/${encodeURIComponent(m)}`),
              },
              "×",
            ),
          ),
        ),
        app.linkedModels.length === 0 ? h("span", { class: "warn" }, "none: every query gets the default") : null,
        unlinked.length === 0
          ? null
          : h(
              "span",
              { class: "inline-form" },
              linkSelect,
              h(
                "button",
                {
                  ...write,
                  onclick: () =>
                    void this.page.act(`linked ${linkSelect.value}`, "POST", `/api/applications/${encodeURIComponent(app.name)}/links`, {
                      model: linkSelect.value,
                    }),
                },
                "Link",
              ),
            ),
        h("span", { class: "grow" }),
        h(
          "span",
          { class: "inline-form" },
          policySelect,
          policyParameter,
          h(
            "button",
            {
              ...write,
              onclick: () =>
                void this.page.act(
                  `policy set to ${policySelect.value}`,
                  "PUT",
                  `/api/applications/${encodeURIComponent(app.name)}/policy`,
                  policyOf(policySelect.value, policyParameter.value, app.linkedModels),
                ),
            },
            "Set policy",
          ),
        ),
      ),
    );
  }

  private renderPolicyChart(app: ApplicationJson): void {
    const title = POLICY_MEASURES[app.policy.kind];
    const key = JSON.stringify([app.policy.kind, app.linkedModels]);
    if (this.policyCharts?.key === key) return;
    for (const { chart, box } of this.policyCharts?.charts ?? []) {
      chart.destroy();
      box.remove();
    }
    this.policyCharts = undefined;
    if (title === undefined || app.linkedModels.length === 0) return;
    const modelLines = (pick: (f: MetricsFrame, model: string) => number | null | undefined) =>
      app.linkedModels.map((model, i) => ({
        label: model,
        color: MODEL_COLORS[i % MODEL_COLORS.length] ?? "#58a6ff",
        pick: (f: MetricsFrame) => pick(f, model),
      }));
    const specs = [
      { testId: "policy-chart", title, lines: modelLines((f, model) => f.policies?.[app.name]?.[model]) },
      // The mean since the router started: a line from the first feedback on (the last window's mean has a gap
      // whenever no feedback comes, which is most of the time for most applications).
      { testId: "loss-chart", title: "Feedback loss (mean)", lines: modelLines((f, model) => f.feedbackLoss?.[app.name]?.[model]?.overall) },
    ];
    const charts = specs.map(({ testId, ...spec }) => {
      const box = h("div", { class: "chart", "data-testid": testId });
      this.chartBox.append(box);
      const chart = new LineChart(box, { ...spec, format: (v) => v.toFixed(2), minMax: 1 });
      chart.update(this.page.frames());
      return { chart, box };
    });
    this.policyCharts = { key, charts };
  }

  frame(frames: readonly MetricsFrame[]): void {
    const latest = frames.at(-1)?.applications[this.app.name];
    const weights = frames.at(-1)?.policies?.[this.app.name] ?? {};
    const losses = frames.at(-1)?.feedbackLoss?.[this.app.name] ?? {};
    const number = (label: string, id: string, value: number | null | undefined, text: string, bad = false, title: string | undefined = undefined) =>
      h(
        "div",
        { class: `number${bad ? " bad" : ""}`, "data-testid": `${this.app.name}-${id}`, "data-value": value ?? "", title },
        h("b", {}, text),
        h("span", {}, label),
      );
    const slo = this.app.sloMicros / 1e6;
    fill(
      this.numbers,
      number("queries/s", "throughput", latest?.throughput, formatRate(latest?.throughput)),
      number("p50", "p50", latest?.p50, formatSeconds(latest?.p50)),
      number("p99", "p99", latest?.p99, formatSeconds(latest?.p99), (latest?.p99 ?? 0) > slo),
      number("defaults", "default-rate", latest?.defaultRate, formatPercent(latest?.defaultRate), (latest?.defaultRate ?? 0) > 0.01),
      number("errors", "error-rate", latest?.errorRate, formatPercent(latest?.errorRate), (latest?.errorRate ?? 0) > 0.01),
      ...Object.entries(weights).map(([model, w]) => number(`policy: ${model}`, `policy-${model}`, w, w.toFixed(2))),
      ...Object.entries(losses).map(([model, loss]) =>
        number(
          `loss: ${model} (${loss.count} judged)`,
          `loss-${model}`,
          loss.overall,
          loss.overall === null ? "–" : loss.overall.toFixed(2),
          (loss.overall ?? 0) > 0.5,
          `mean loss of the outputs judged in the last window: ${loss.recent === null ? "none judged" : loss.recent.toFixed(2)}`,
        ),
      ),
    );
    for (const chart of [...this.charts, ...(this.policyCharts?.charts ?? []).map((c) => c.chart)]) {
      chart.resize();
      chart.update(frames);
    }
  }

  destroy(): void {
    for (const chart of [...this.charts, ...(this.policyCharts?.charts ?? []).map((c) => c.chart)]) chart.destroy();
    this.root.remove();
  }
}

export class ApplicationsView {
  readonly root = h("div", { class: "cards" });
  private readonly cards = new Map<string, ApplicationCard>();

  constructor(private readonly page: PageContext) {}

  render(apps: readonly ApplicationJson[]): void {
    const names = new Set(apps.map((a) => a.name));
    for (const [name, card] of this.cards) {
      if (!names.has(name)) {
        card.destroy();
        this.cards.delete(name);
      }
    }
    for (const app of apps) {
      let card = this.cards.get(app.name);
      if (card === undefined) {
        card = new ApplicationCard(app, this.page);
        this.cards.set(app.name, card);
        card.frame(this.page.frames());
      } else {
        card.render(app);
      }
      this.root.append(card.root);
    }
    if (apps.length === 0) fill(this.root, h("p", { class: "muted empty" }, "No applications yet."));
    else this.root.querySelector(".empty")?.remove();
  }

  frame(frames: readonly MetricsFrame[]): void {
    for (const card of this.cards.values()) card.frame(frames);
  }
}

/** The form that creates an application. */
export function createApplicationForm(page: PageContext): HTMLElement {
  const write = page.writeAttributes();
  const name = h("input", { placeholder: "name", "aria-label": "application name", required: true, ...write });
  const inputType = h(
    "select",
    { "aria-label": "input type", ...write },
    ...["doubles", "floats", "ints", "strings", "bytes"].map((t) => h("option", { value: t }, t)),
  );
  const defaultOutput = h("input", { placeholder: "default output", "aria-label": "default output", value: "-1", ...write });
  const slo = h("input", { class: "narrow", type: "number", min: 1, value: 100, "aria-label": "SLO in milliseconds", ...write });
  const form = h(
    "form",
    { class: "inline-form create", "data-testid": "create-app" },
    h("span", { class: "label" }, "New application"),
    name,
    inputType,
    defaultOutput,
    h("label", {}, "SLO ", slo, " ms"),
    h("button", { type: "submit", ...write }, "Create"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void page
      .act(`created ${name.value}`, "POST", "/api/applications", {
        name: name.value,
        inputType: inputType.value,
        defaultOutput: defaultOutput.value,
        sloMicros: Math.round(Number(slo.value) * 1000),
      })
      .then((ok) => {
        if (ok) name.value = "";
      });
  });
  return form;
}
