// `clipper up` starts the console beside the services: it prints its address, serves the built page and
// the live state there, `clipper status` lists it, `clipper restart console` restarts it alone, and
// `clipper down` stops it with the rest.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleUiDir } from "../../services/build.js";
import type { ConsoleState } from "../../services/console/index.js";
import { repoRoot, waitFor } from "../system.js";

const run = promisify(execFile);
const cli = join(repoRoot, "cli", "clipper.mjs");

async function isFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

interface Recorded {
  services: Array<{ name: string; pid: number; port: number }>;
}

describe("clipper up starts the console", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "clipper-console-up-"));
  const clipper = (...args: string[]) => run(process.execPath, [cli, ...args, "--data-dir", dataDir], { cwd: repoRoot, timeout: 180_000 });
  const recorded = () => JSON.parse(readFileSync(join(dataDir, "run", "services.json"), "utf8")) as Recorded;
  let upOutput = "";
  let consolePort = 0;

  beforeAll(async () => {
    // Service ports whose metrics ports (+8000) are free, and the console's (the gateway's + 4).
    let ports: number[] = [];
    for (;;) {
      const g = 20_000 + Math.floor(Math.random() * 30_000);
      ports = [g, g + 1, g + 3];
      const wanted = [...ports, g + 4, g + 1 + 8000, g + 3 + 8000];
      if ((await Promise.all(wanted.map(isFree))).every(Boolean)) break;
    }
    const [g = 0, r = 0, c = 0] = ports;
    consolePort = g + 4;
    upOutput = (await clipper("up", "--gateway-port", String(g), "--registry-port", String(r), "--container-manager-port", String(c))).stdout;
  }, 240_000);

  afterAll(async () => {
    await clipper("down").catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }, 90_000);

  it("prints the console's address and serves the built page and the live state there", async () => {
    expect(upOutput).toContain(`  console: http://127.0.0.1:${consolePort}/`);
    const page = await fetch(`http://127.0.0.1:${consolePort}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("<title>Clipper console</title>");
    // The built page, not the source: its script is a bundled asset.
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await fetch(`http://127.0.0.1:${consolePort}${script}`)).status).toBe(200);
    expect(readFileSync(join(consoleUiDir(repoRoot), ".sources-sha256"), "utf8")).toMatch(/^[0-9a-f]{64}\n$/);
    const state = (await (await fetch(`http://127.0.0.1:${consolePort}/api/state`)).json()) as ConsoleState;
    expect(state).toMatchObject({ registryConnected: true, applications: [], models: [] });
    const session = await (await fetch(`http://127.0.0.1:${consolePort}/api/session`)).json();
    expect(session).toEqual({ role: "open", name: "", canWrite: true });
  });

  it("is listed by clipper status, and clipper restart console restarts it alone", async () => {
    const status = (await clipper("status")).stdout;
    expect(status).toMatch(new RegExp(` {2}console +up +\\d+ +127\\.0\\.0\\.1:${consolePort} +${consolePort} +0\\n`));
    const before = recorded();
    const restarted = (await clipper("restart", "console")).stdout;
    expect(restarted).toMatch(/console restarted \(pid \d+\)\n$/);
    const after = recorded();
    for (const name of ["registry", "container-manager", "gateway"]) {
      expect(after.services.find((s) => s.name === name)?.pid).toBe(before.services.find((s) => s.name === name)?.pid);
    }
    expect(after.services.find((s) => s.name === "console")?.pid).not.toBe(before.services.find((s) => s.name === "console")?.pid);
    await waitFor("the restarted console answering", async () => ((await fetch(`http://127.0.0.1:${consolePort}/healthz`)).ok ? true : undefined));
  }, 120_000);

  it("is stopped by clipper down", async () => {
    const pid = recorded().services.find((s) => s.name === "console")?.pid ?? 0;
    expect((await clipper("down")).stdout).toContain(`stopping console (pid ${pid})`);
    expect(() => process.kill(pid, 0)).toThrow();
    await expect(fetch(`http://127.0.0.1:${consolePort}/healthz`)).rejects.toThrow();
  }, 90_000);
});
