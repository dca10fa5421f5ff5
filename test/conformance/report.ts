import type { CheckResult } from "./run.js";

// The kit's table: one row per check as it completes, then a summary line.

const COLUMNS = [
  { title: "check", width: 20 },
  { title: "input", width: 8 },
  { title: "result", width: 6 },
  { title: "time", width: 8 },
] as const;

const RESULT = { pass: "PASS", fail: "FAIL", skip: "SKIP" } as const;

export function tableHeader(): string {
  const head = `${COLUMNS.map((c) => c.title.padEnd(c.width)).join(" ")} detail`;
  return `${head}\n${"-".repeat(head.length + 40)}`;
}

export function tableRow(r: CheckResult): string {
  const time = `${r.ms} ms`;
  return `${[r.id.padEnd(20), r.inputType.padEnd(8), RESULT[r.outcome].padEnd(6), time.padStart(8)].join(" ")} ${r.detail}`;
}

export function summary(results: readonly CheckResult[]): string {
  const count = (o: CheckResult["outcome"]) => results.filter((r) => r.outcome === o).length;
  return `${results.length} checks: ${count("pass")} passed, ${count("fail")} failed, ${count("skip")} skipped`;
}

export function table(results: readonly CheckResult[]): string {
  return [tableHeader(), ...results.map(tableRow), summary(results)].join("\n");
}
