import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ProcessLedger, processStartTime } from "./process-ledger.js";

describe("ProcessLedger", () => {
  const dirs: string[] = [];
  const ledgerFile = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ledger-"));
    dirs.push(dir);
    return path.join(dir, "run", "replica-processes.json");
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("stops the process groups a previous manager recorded, and only those still the same processes", async () => {
    const file = ledgerFile();
    // A replica that ignores SIGTERM: stopped by SIGKILL after the grace.
    const stubborn = spawn("sh", ["-c", "trap '' TERM; sleep 30 & wait"], { detached: true, stdio: "ignore" });
    const quiet = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    const previous = new ProcessLedger(file);
    previous.record("stubborn", stubborn.pid as number);
    previous.record("quiet", quiet.pid as number);
    previous.record("gone", quiet.pid as number);
    previous.forget("gone");
    // A pid now used by another process (this one) with another start time is left alone.
    const recorded = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    fs.writeFileSync(file, JSON.stringify({ ...recorded, reused: { pid: process.pid, startTime: "1" } }));

    const stopped = await new ProcessLedger(file).stopLeftovers(300);
    expect(stopped.sort()).toEqual([stubborn.pid, quiet.pid].sort());
    await expect.poll(() => [processStartTime(stubborn.pid as number), processStartTime(quiet.pid as number)]).toEqual([undefined, undefined]);
    expect(processStartTime(process.pid)).toBeDefined();
    expect(JSON.parse(fs.readFileSync(file, "utf8"))).toEqual({});
    expect(await new ProcessLedger(file).stopLeftovers(300)).toEqual([]);
  });

  it("stops nothing when there is no file", async () => {
    expect(await new ProcessLedger(ledgerFile()).stopLeftovers(100)).toEqual([]);
  });
});
