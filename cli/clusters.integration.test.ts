// Several systems on one machine: `clipper up --cluster NAME` twice, side by side on ports of their own, each
// serving its own model, found by name by every command; `down` of one leaves the other serving and nothing of its own.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnvironment, runCli } from "./cli.js";
import { DEFAULT_PORTS, readClusterRecord, writeClusterRecord } from "./clusters.js";
import { up } from "./lifecycle.js";
import type { Output } from "./output.js";
import { isRunning, readServicesFile, type ServicesFile, stopServices, writeServicesFile } from "./supervisor.js";

const run = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "..");
const cli = path.join(repoRoot, "cli", "clipper.mjs");
const sumModel = path.join(repoRoot, "sdk", "typescript", "examples", "sum-model.ts");

class Capture implements Output {
  text = "";
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/** The replica processes a container-manager recorded in its data directory's ledger. */
function ledgerPids(dataDir: string): number[] {
  const file = path.join(dataDir, "run", "replica-processes.json");
  if (!fs.existsSync(file)) return [];
  return Object.values(JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, { pid: number }>).map((e) => e.pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("clipper up --cluster NAME", () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  const started: ServicesFile[] = [];
  /** The real executable, as a user runs it. */
  const clipperExecutable = async (...args: string[]) => (await run(process.execPath, [cli, ...args], { cwd: repoRoot, env, timeout: 180_000 })).stdout;
  /** The same CLI in this process (a node start saved per command); its stdout, or an error with its stderr. */
  const clipper = async (...args: string[]) => {
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await runCli(args, { stdout, stderr, env, cwd: repoRoot, repoRoot });
    if (code !== 0) throw new Error(`clipper ${args.join(" ")} exited with ${code}: ${stderr.text}`);
    return stdout.text;
  };
  const dataDir = (name: string) => path.join(home, "clusters", name);

  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-clusters-"));
    env = { ...process.env, CLIPPER_HOME: home };
    delete env.CLIPPER_DATA_DIR;
    delete env.CLIPPER_CLUSTER;
  });

  afterAll(async () => {
    // Whatever a failed assertion left running.
    for (const name of ["a", "b"]) await clipper("down", "--cluster", name).catch(() => undefined);
    for (const file of started) await stopServices(file, { graceMs: 1000 });
    fs.rmSync(home, { recursive: true, force: true });
  }, 90_000);

  it("refuses a cluster name that is not a DNS label, with what a name may be, before doing anything", async () => {
    for (const [argv, clusterEnv] of [
      [["up", "--cluster", "Team_A"], undefined],
      [["--cluster=-a", "status"], undefined],
      [["status", "--cluster", "x".repeat(64)], undefined],
      [["app", "list"], "a."],
    ] as const) {
      const stderr = new Capture();
      const cliEnv: CliEnvironment = {
        stdout: new Capture(),
        stderr,
        env: { CLIPPER_HOME: home, ...(clusterEnv === undefined ? {} : { CLIPPER_CLUSTER: clusterEnv }) },
        cwd: home,
        repoRoot,
      };
      expect(await runCli([...argv], cliEnv)).toBe(2);
      expect(stderr.text).toMatch(
        /^error: cluster name ".*" is not valid: use 1 to 63 lowercase letters, digits and "-", starting and ending with a letter or digit/,
      );
    }
    expect(fs.existsSync(path.join(home, "clusters"))).toBe(false);
  });

  it("says a named cluster is not running instead of reaching the default one's ports", async () => {
    const stderr = new Capture();
    const code = await runCli(["--cluster", "idle", "app", "list"], { stdout: new Capture(), stderr, env: { CLIPPER_HOME: home }, cwd: home, repoRoot });
    expect(code).toBe(1);
    expect(stderr.text).toBe(
      `error: cluster "idle" is not running (no registry in ${path.join(dataDir("idle"), "run", "services.json")}); \`clipper up --cluster idle\` starts it\n`,
    );
  });

  it("refuses to start one cluster from another's data directory", async () => {
    const taken = path.join(home, "taken");
    writeClusterRecord(taken, { version: 1, name: "a", ports: DEFAULT_PORTS });
    const stderr = new Capture();
    const cliEnv: CliEnvironment = { stdout: new Capture(), stderr, env: { CLIPPER_HOME: home }, cwd: home, repoRoot };
    expect(await runCli(["up", "--cluster", "b", "--data-dir", taken], cliEnv)).toBe(1);
    expect(stderr.text).toBe(`error: ${taken} is cluster "a"'s data directory, not "b"'s: pass --cluster a, or another --data-dir\n`);
    // Services of the default cluster running there (this process stands in for one): not another cluster's to start over.
    const running = path.join(home, "running");
    writeServicesFile({
      version: 1,
      dataDir: running,
      host: "127.0.0.1",
      services: [{ name: "registry", pid: process.pid, startTicks: null, host: "127.0.0.1", port: 1, metricsPort: null, argv: [], log: "", startedAtMs: 0 }],
    });
    const err = await up({ cluster: "b", dataDir: running, host: "127.0.0.1", launches: [], healthTimeoutMs: 1000, portFlags: {} }, new Capture()).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe(`cluster "default" runs from ${running}: pass --cluster default, or another --data-dir`);
  });

  it("runs two systems side by side, each found by name, and `down` of one leaves the other serving", async () => {
    const upA = await clipperExecutable("up", "--cluster", "a");
    const upB = await clipper("up", "--cluster", "b");
    const a = readServicesFile(dataDir("a"));
    const b = readServicesFile(dataDir("b"));
    if (a === undefined || b === undefined) throw new Error("no services.json");
    started.push(a, b);
    expect(upA).toContain(`clipper is up (cluster "a", data dir ${dataDir("a")}`);
    expect(a.cluster).toBe("a");
    // Ports of their own: none of the default cluster's, none shared.
    const portsOf = (f: ServicesFile) => f.services.flatMap((s) => [s.port, ...(s.metricsPort === null ? [] : [s.metricsPort])]);
    const defaults = Object.values(DEFAULT_PORTS);
    expect(portsOf(a).filter((p) => defaults.includes(p))).toEqual([]);
    expect(portsOf(a).filter((p) => portsOf(b).includes(p))).toEqual([]);
    const gatewayA = a.services.find((s) => s.name === "gateway")?.port;
    const gatewayB = b.services.find((s) => s.name === "gateway")?.port;
    expect(upB).toContain(`REST:  POST http://127.0.0.1:${gatewayB}/<application>/predict`);
    expect(readClusterRecord(dataDir("a"))?.ports.gateway).toBe(gatewayA);
    // The container-manager names and labels what it creates with the cluster's name.
    expect(a.services.find((s) => s.name === "container-manager")?.argv.join(" ")).toContain("--cluster-name a");

    // The same application in each, served by a model named after its system: the answers tell them apart.
    for (const name of ["a", "b"]) {
      await clipper("--cluster", name, "app", "create", "sums", "--input-type", "doubles", "--default-output", "-1", "--slo-micros", "2000000");
      await clipper("--cluster", name, "model", "deploy", `sum-${name}`, "--version", "1", "--input-type", "doubles", "--node", sumModel, "--timeout", "90");
      await clipper("--cluster", name, "link", "sums", `sum-${name}`);
    }
    expect(await clipper("--cluster", "b", "model", "list")).not.toContain("sum-a");
    expect(JSON.parse(await clipper("--cluster", "a", "predict", "sums", "[1, 2]"))).toMatchObject({ output: 3, default: false, models: ["sum-a:1"] });
    expect(JSON.parse(await clipper("--cluster", "b", "predict", "sums", "[1, 2]"))).toMatchObject({ output: 3, default: false, models: ["sum-b:1"] });

    const listed = await clipper("clusters");
    expect(listed).toMatch(new RegExp(`^a +up +127\\.0\\.0\\.1:${gatewayA} `, "m"));
    expect(listed).toMatch(new RegExp(`^b +up +127\\.0\\.0\\.1:${gatewayB} `, "m"));
    expect(await clipper("--cluster", "a", "status")).toContain(`services (cluster "a", data dir ${dataDir("a")}):`);

    const replicasA = ledgerPids(dataDir("a"));
    const replicasB = ledgerPids(dataDir("b"));
    expect(replicasA).toHaveLength(1);
    expect(replicasB).toHaveLength(1);
    expect(await clipper("down", "--cluster", "a")).toContain("clipper is down");
    // Nothing of a's is left; b's services and replica run on, and answer.
    for (const s of a.services) expect(isRunning(s), s.name).toBe(false);
    for (const pid of replicasA) expect(alive(pid), `a's replica ${pid}`).toBe(false);
    for (const s of b.services) expect(isRunning(s), s.name).toBe(true);
    expect(ledgerPids(dataDir("b"))).toEqual(replicasB);
    expect(JSON.parse(await clipper("--cluster", "b", "predict", "sums", "[4, 5]"))).toMatchObject({ output: 9, default: false, models: ["sum-b:1"] });
    expect(await clipper("clusters")).toMatch(/^a +stopped +- +- +- +- /m);

    // Up again: the ports it had, and what was registered.
    await clipper("up", "--cluster", "a");
    const again = readServicesFile(dataDir("a"));
    if (again !== undefined) started.push(again);
    expect(again?.services.find((s) => s.name === "gateway")?.port).toBe(gatewayA);
    expect(JSON.parse(await clipper("--cluster", "a", "predict", "sums", "[1, 2]"))).toMatchObject({ output: 3, default: false, models: ["sum-a:1"] });

    for (const name of ["a", "b"]) await clipper("--cluster", name, "down");
    expect(await clipper("clusters")).toMatch(/^a +stopped[^\n]*\nb +stopped/m);
  }, 300_000);
});
