/** Models and their versions: replicas with their health, batching, and the controls to scale and roll back. */
import type { MetricsFrame, ModelVersionJson, ReplicaLogsJson } from "../../services/console/console-api.js";
import { LineChart } from "./charts.js";
import { fill, h } from "./dom.js";
import { formatAge, formatMicros } from "./format.js";
import type { PageContext } from "./page-context.js";

const key = (m: ModelVersionJson) => `${m.name}:${m.version}`;

class VersionCard {
  readonly root: HTMLElement;
  private readonly info = h("div", { class: "card-info" });
  private readonly replicas = h("div", { class: "replicas" });
  private readonly logs = h("pre", { class: "logs", hidden: true, "data-testid": "replica-logs" });
  private readonly charts: LineChart[] = [];
  private shown = "";

  constructor(
    private model: ModelVersionJson,
    private readonly page: PageContext,
  ) {
    const k = key(model);
    const chartBox = h("div", { class: "charts two" });
    this.root = h("section", { class: "card", "data-testid": `model-${model.name}-${model.version}` }, this.info, this.replicas, this.logs, chartBox);
    const specs = [
      {
        title: "Batch size chosen by the router",
        lines: [{ label: "mean inputs per batch", color: "#a371f7", pick: (f: MetricsFrame) => f.models[k]?.meanBatchSize }],
        format: (v: number) => v.toFixed(v >= 10 ? 0 : 1),
        minMax: 2,
      },
      {
        title: "Queue depth",
        lines: [{ label: "queries waiting", color: "#58a6ff", pick: (f: MetricsFrame) => f.models[k]?.queueDepth }],
        format: (v: number) => v.toFixed(0),
        minMax: 4,
      },
    ];
    for (const spec of specs) {
      const box = h("div", { class: "chart" });
      chartBox.append(box);
      this.charts.push(new LineChart(box, spec));
    }
    this.render(model);
  }

  render(model: ModelVersionJson): void {
    this.model = model;
    const shownKey = JSON.stringify([model, this.page.session()]);
    if (shownKey === this.shown) return;
    this.shown = shownKey;
    const write = this.page.writeAttributes();
    const path = `/api/models/${encodeURIComponent(model.name)}/versions/${encodeURIComponent(model.version)}`;
    const ready = model.replicas.filter((r) => r.state === "ready").length;
    const replicasInput = h("input", {
      class: "narrow",
      type: "number",
      min: 0,
      value: model.desiredReplicas,
      "aria-label": "desired replicas",
      "data-testid": "scale-input",
      ...write,
    });
    const b = model.batching;
    const knob = (label: string, value: number | null, hint: string) =>
      h("input", { class: "narrow", type: "number", min: 0, value: value ?? "", placeholder: hint, "aria-label": label, title: label, ...write });
    const maxBatch = knob("max batch size (0: no limit)", b.maxBatchSize, "0");
    const maxWait = knob("longest wait to fill a batch, µs (empty: the router chooses)", b.maxWaitMicros, "auto");
    const inFlight = knob("batches in flight per replica (0: the router's default)", b.maxInFlightPerReplica, "0");
    const queue = knob("queue length before refusing (0: the router's default)", b.maxQueueLength, "0");
    fill(
      this.info,
      h(
        "header",
        { class: "card-head" },
        h("h3", {}, `${model.name} `, h("span", { class: "muted" }, `version ${model.version}`)),
        model.current
          ? h("span", { class: "pill good", "data-testid": "current" }, "current")
          : h(
              "button",
              {
                ...write,
                "data-testid": "set-current",
                onclick: () =>
                  void this.page.act(`${model.name} now uses version ${model.version}`, "PUT", `/api/models/${encodeURIComponent(model.name)}/current`, {
                    version: model.version,
                  }),
              },
              "Make current",
            ),
        h("span", { class: "pill" }, model.inputType),
        h("span", { class: "pill" }, model.runtime),
        h(
          "span",
          { class: `pill ${ready < model.desiredReplicas ? "bad" : "good"}`, "data-testid": "replica-count" },
          `${ready}/${model.desiredReplicas} ready`,
        ),
        h("span", { class: "grow" }),
        h(
          "span",
          { class: "inline-form" },
          h("label", {}, "Replicas ", replicasInput),
          h(
            "button",
            {
              ...write,
              "data-testid": "scale-button",
              onclick: () =>
                void this.page.act(`${key(model)} scaled to ${replicasInput.value}`, "PUT", `${path}/replicas`, { replicas: Number(replicasInput.value) }),
            },
            "Scale",
          ),
        ),
      ),
      h(
        "div",
        { class: "row" },
        h("span", { class: "label" }, "Batching"),
        h("label", {}, "max batch ", maxBatch),
        h("label", {}, "max wait µs ", maxWait),
        h("label", {}, "in flight/replica ", inFlight),
        h("label", {}, "queue ", queue),
        h(
          "button",
          {
            ...write,
            onclick: () =>
              void this.page.act(`batching of ${key(model)} changed`, "PUT", `${path}/batching`, {
                maxBatchSize: Number(maxBatch.value || 0),
                maxWaitMicros: maxWait.value === "" ? null : Number(maxWait.value),
                maxInFlightPerReplica: Number(inFlight.value || 0),
                maxQueueLength: Number(queue.value || 0),
                fixedSize: b.fixedSize,
              }),
          },
          "Apply",
        ),
        b.maxWaitMicros === null
          ? h("span", { class: "muted" }, "wait: the router chooses")
          : h("span", { class: "muted" }, `wait ≤ ${formatMicros(b.maxWaitMicros)}`),
      ),
    );
    const now = Date.now();
    fill(
      this.replicas,
      model.replicas.length === 0
        ? h("p", { class: "muted" }, model.desiredReplicas === 0 ? "No replicas (scaled to 0)." : "No replica reported yet.")
        : h(
            "table",
            {},
            h(
              "thead",
              {},
              h("tr", {}, ...["", "replica", "endpoint", "state", "restarts", "up for", "in flight", "last event", ""].map((c) => h("th", {}, c))),
            ),
            h(
              "tbody",
              {},
              ...model.replicas.map((r) =>
                h(
                  "tr",
                  { "data-testid": "replica", "data-state": r.state, "data-endpoint": r.endpoint },
                  h("td", {}, h("span", { class: `dot ${r.state}`, title: r.state })),
                  h("td", { class: "mono" }, r.id),
                  h("td", { class: "mono" }, r.endpoint || "–"),
                  h("td", { class: `state ${r.state}` }, r.state),
                  h("td", {}, String(r.restarts)),
                  h("td", {}, r.startedAtMs > 0 ? formatAge(r.startedAtMs, now) : "–"),
                  h("td", { class: "inflight", "data-endpoint": r.endpoint }, "–"),
                  h("td", { class: "muted message", title: r.message }, r.message),
                  h("td", {}, h("button", { class: "small", "data-testid": "show-logs", onclick: () => void this.showLogs(r.id) }, "Logs")),
                ),
              ),
            ),
          ),
    );
    this.frame(this.page.frames(), false);
  }

  /** The replica's last log lines under the table; the same button again hides them. */
  private async showLogs(replicaId: string): Promise<void> {
    if (!this.logs.hidden && this.logs.dataset.replica === replicaId) {
      this.logs.hidden = true;
      return;
    }
    const path = `/api/models/${encodeURIComponent(this.model.name)}/versions/${encodeURIComponent(this.model.version)}/logs`;
    try {
      const { logs } = await this.page.get<ReplicaLogsJson>(`${path}?replica=${encodeURIComponent(replicaId)}&lines=40`);
      const lines = logs.flatMap((l) => l.lines);
      this.logs.textContent = lines.length === 0 ? `(replica ${replicaId} wrote nothing yet)` : lines.join("\n");
    } catch (err) {
      this.logs.textContent = `could not read the log of ${replicaId}: ${(err as Error).message}`;
    }
    this.logs.dataset.replica = replicaId;
    this.logs.hidden = false;
  }

  frame(frames: readonly MetricsFrame[], charts = true): void {
    const flights = frames.at(-1)?.models[key(this.model)]?.inFlightBatches ?? {};
    for (const cell of this.replicas.querySelectorAll<HTMLElement>("td.inflight")) cell.textContent = String(flights[cell.dataset.endpoint ?? ""] ?? 0);
    if (!charts) return;
    for (const chart of this.charts) {
      chart.resize();
      chart.update(frames);
    }
  }

  destroy(): void {
    for (const chart of this.charts) chart.destroy();
    this.root.remove();
  }
}

export class ModelsView {
  readonly root = h("div", { class: "cards" });
  private readonly cards = new Map<string, VersionCard>();

  constructor(private readonly page: PageContext) {}

  render(models: readonly ModelVersionJson[]): void {
    const keys = new Set(models.map(key));
    for (const [k, card] of this.cards) {
      if (!keys.has(k)) {
        card.destroy();
        this.cards.delete(k);
      }
    }
    for (const model of models) {
      let card = this.cards.get(key(model));
      if (card === undefined) {
        card = new VersionCard(model, this.page);
        this.cards.set(key(model), card);
      } else {
        card.render(model);
      }
      this.root.append(card.root);
    }
    if (models.length === 0) fill(this.root, h("p", { class: "muted empty" }, "No models yet: deploy one with `clipper model deploy`."));
    else this.root.querySelector(".empty")?.remove();
  }

  frame(frames: readonly MetricsFrame[]): void {
    for (const card of this.cards.values()) card.frame(frames);
  }
}
