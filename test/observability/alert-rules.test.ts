// The alert rules' paperwork: every alert of deploy/prometheus/alerts.yml has a
// runbook in docs/operations.md that its runbook_url points to, and promtool
// unit tests (deploy/prometheus/alerts.test.yml) in which it fires and in which
// it stays silent. promtool itself runs the rules (.ci/run).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadYaml } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../system.js";

interface AlertRule {
  alert: string;
  expr: string;
  labels?: { severity?: string };
  annotations?: { summary?: string; runbook_url?: string };
}

interface RuleTests {
  rule_files: string[];
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

const deploy = join(repoRoot, "deploy", "prometheus");
const rules = loadYaml<{ groups: Array<{ rules: AlertRule[] }> }>(readFileSync(join(deploy, "alerts.yml"), "utf8")).groups.flatMap((g) => g.rules);
const ruleTests = loadYaml<RuleTests>(readFileSync(join(deploy, "alerts.test.yml"), "utf8"));
const operations = readFileSync(join(repoRoot, "docs", "operations.md"), "utf8");

/** The body of `### name` in docs/operations.md's "Alerts" section, up to the next heading. */
function runbook(name: string): string | undefined {
  const alerts = operations.slice(operations.indexOf("\n## Alerts\n"));
  const start = alerts.indexOf(`\n### ${name}\n`);
  if (start < 0) return undefined;
  const body = alerts.slice(start + name.length + 6);
  const next = body.search(/\n##/);
  return next < 0 ? body : body.slice(0, next);
}

describe("deploy/prometheus/alerts.yml", () => {
  it("names each alert once, with a severity and a summary", () => {
    expect(rules.length).toBeGreaterThanOrEqual(15);
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    for (const r of rules) {
      expect(r.alert, "every rule is an alerting rule").toMatch(/^Clipper[A-Za-z]+$/);
      expect([r.alert, r.labels?.severity]).toEqual([r.alert, expect.stringMatching(/^(critical|warning|info)$/)]);
      expect([r.alert, r.annotations?.summary]).toEqual([r.alert, expect.any(String)]);
    }
  });

  it("points each alert to its runbook in docs/operations.md, which says what it means, what to look at and what to do", () => {
    for (const r of rules) {
      // GitHub's anchor of a heading that is one word: the word in lower case.
      expect([r.alert, r.annotations?.runbook_url]).toEqual([r.alert, `docs/operations.md#${r.alert.toLowerCase()}`]);
      const body = runbook(r.alert);
      expect(body, `docs/operations.md has no "### ${r.alert}" under "## Alerts"`).toBeDefined();
      for (const part of ["**Means**", "**Look first**", "**Do**"]) expect([r.alert, body?.includes(part)]).toEqual([r.alert, true]);
    }
  });

  it("has promtool tests in which each alert fires and in which it stays silent", () => {
    expect(ruleTests.rule_files).toEqual(["alerts.yml"]);
    const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    const names = new Set(rules.map((r) => r.alert));
    for (const c of cases) expect(names, `alerts.test.yml tests an alert alerts.yml lacks: ${c.alertname}`).toContain(c.alertname);
    for (const name of names) {
      const mine = cases.filter((c) => c.alertname === name);
      expect([name, mine.some((c) => c.exp_alerts.length > 0)], "fires in some case").toEqual([name, true]);
      expect([name, mine.some((c) => c.exp_alerts.length === 0)], "silent in some case").toEqual([name, true]);
    }
  });
});
