import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { table } from "./report.js";
import { type CheckResult, runConformance } from "./run.js";

// The conformance kit against the runtimes in this repository, each serving its conformance model
// (test/conformance/models/). The Java runtime needs its Maven build: .ci/run runs the kit's command
// for it after `mvn install` (sdk/java/README.md).

const ROOT = path.resolve(import.meta.dirname, "../..");
const MODELS = path.join(ROOT, "test", "conformance", "models");
const PYTHON = path.join(ROOT, ".venv", "bin", "python");

const RUNTIMES = {
  python: {
    command: [PYTHON, "-m", "clipper_runtime.file_runner", path.join(MODELS, "conformance_model.py"), "predict"],
    env: { PYTHONPATH: path.join(ROOT, "sdk", "python", "src"), PYTHONUNBUFFERED: "1" },
  },
  typescript: {
    command: [process.execPath, "--import", "tsx", path.join(ROOT, "sdk", "typescript", "src", "runner.ts")],
    env: { CLIPPER_MODEL_MODULE: path.join(MODELS, "conformance-model.ts") },
  },
} as const;

/**
 * Checks a runtime is known to fail, with why: the test fails when one of them passes (remove it
 * here, and in docs/model-containers.md's table) or when any other check fails.
 */
const KNOWN_GAPS: Record<keyof typeof RUNTIMES, Record<string, string>> = {
  python: {},
  typescript: {},
};

describe("conformance kit", () => {
  for (const [runtime, spec] of Object.entries(RUNTIMES) as [keyof typeof RUNTIMES, (typeof RUNTIMES)[keyof typeof RUNTIMES]][]) {
    it(`the ${runtime} runtime passes every check but its known gaps`, { timeout: 240_000 }, async () => {
      const results: CheckResult[] = await runConformance({ container: { command: spec.command, cwd: ROOT, env: spec.env } });
      const gaps = KNOWN_GAPS[runtime];
      const unexpected = results.filter((r) => r.outcome === "fail" && gaps[r.id] === undefined);
      const fixed = Object.keys(gaps).filter((id) => results.some((r) => r.id === id && r.outcome === "pass"));
      if (unexpected.length > 0 || fixed.length > 0) process.stdout.write(`${runtime}:\n${table(results)}\n`);
      expect(unexpected.map((r) => `${r.id} (${r.inputType}): ${r.detail}`)).toEqual([]);
      expect(fixed, "known gaps that now pass: take them out of KNOWN_GAPS and docs/model-containers.md").toEqual([]);
      // Every check ran: 19 on the first input type's container, 11 on each of the other four.
      expect(results.length).toBe(19 + 4 * 11);
    });
  }

  it("is a command: a table, exit 0 when every check passes and 1 when one fails", { timeout: 60_000 }, () => {
    const kit = path.join(ROOT, "test", "conformance", "kit.ts");
    const run = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", kit, ...args], { cwd: ROOT, encoding: "utf8", timeout: 50_000 });
    const python = RUNTIMES.python;
    const ok = run(["--input-types", "strings", "--only", "health,metadata", "--env", `PYTHONPATH=${python.env.PYTHONPATH}`, "--", ...python.command]);
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^health\s+strings\s+PASS\s/m);
    expect(ok.stdout).toContain("3 checks: 3 passed, 0 failed, 0 skipped");
    const broken = run(["--input-types", "doubles", "--start-timeout-ms", "5000", "--", process.execPath, "-e", "process.exit(3)"]);
    expect(broken.status).toBe(1);
    expect(broken.stdout).toMatch(/^readiness\s+doubles\s+FAIL\s.*exited with code 3/m);
    const usage = run(["--only", "no-such-check", "--", "true"]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('unknown check "no-such-check"');
  });
});
