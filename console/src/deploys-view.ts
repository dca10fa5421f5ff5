/** Deploys in flight: which version, its replicas starting and ready out of desired, and why a failed one failed. */
import type { ModelVersionJson } from "../../services/console/console-api.js";
import { type DeployProgress, deploysInFlight } from "./deploy-progress.js";
import { fill, h } from "./dom.js";
import { formatAge } from "./format.js";

function progressRow(d: DeployProgress, nowMs: number): HTMLElement {
  const { ready, starting, unhealthy, failed, stopping } = d.counts;
  const width = (n: number) => `${d.desired === 0 ? 0 : Math.min(100, (100 * n) / d.desired)}%`;
  const parts = [
    `${ready}/${d.desired} ready`,
    starting > 0 ? `${starting} starting` : "",
    unhealthy > 0 ? `${unhealthy} unhealthy` : "",
    failed > 0 ? `${failed} failed` : "",
    stopping > 0 ? `${stopping} stopping` : "",
  ].filter((p) => p !== "");
  const serving = d.current ? "current" : d.serving === undefined ? "not current" : `not current: version ${d.serving} serves`;
  return h(
    "div",
    { class: `card deploy ${d.phase}`, "data-testid": `deploy-${d.model}-${d.version}`, "data-phase": d.phase },
    h(
      "div",
      { class: "deploy-head" },
      h("b", {}, `${d.model}:${d.version}`),
      h("span", { class: `pill ${d.phase === "failed" ? "bad" : "warn"}` }, d.phase),
      h("span", { "data-testid": "deploy-counts" }, parts.join(", ")),
      h("span", { class: "muted" }, serving),
      h("span", { class: "muted" }, d.createdAtMs > 0 ? `deployed ${formatAge(d.createdAtMs, nowMs)} ago` : ""),
    ),
    h(
      "div",
      { class: "progress", title: parts.join(", ") },
      h("span", { class: "ready", style: `width: ${width(ready)}` }),
      h("span", { class: "starting", style: `width: ${width(starting + unhealthy)}` }),
      h("span", { class: "failed", style: `width: ${width(failed)}` }),
    ),
    ...d.reasons.map((reason) => h("p", { class: "reason mono", "data-testid": "deploy-reason" }, reason)),
  );
}

export class DeploysView {
  readonly root = h("div", { class: "deploys", "data-testid": "deploys" });

  render(models: readonly ModelVersionJson[]): void {
    const now = Date.now();
    const inFlight = deploysInFlight(models);
    fill(
      this.root,
      inFlight.length === 0 ? h("p", { class: "muted", "data-testid": "no-deploys" }, "None: every model version has its desired replicas ready.") : null,
      ...inFlight.map((d) => progressRow(d, now)),
    );
  }
}
