/** Starting and stopping the supervisor process `clipper up` leaves (supervisor-main.ts), from the CLI. */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { isRunning, readServicesFile, type ServicesFile, type SupervisorRecord, tailLines } from "./supervisor.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bundle = path.join(repoRoot, "dist", "supervisor", "main.mjs");

/**
 * Bundles supervisor-main.ts into dist/supervisor/main.mjs (as services/build.ts
 * does the services; well under a second). Run from the bundle rather than
 * through tsx, the supervisor takes about 64 MB instead of 86 MB all day.
 */
async function buildSupervisor(): Promise<void> {
  const result = await build({
    absWorkingDir: repoRoot,
    entryPoints: [path.join("cli", "supervisor-main.ts")],
    outfile: bundle,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    write: false,
    logLevel: "silent",
  });
  // Written aside and renamed, so a `clipper up` running at the same time never starts a half-written one.
  const suffix = `.${process.pid}.${Date.now()}.tmp`;
  for (const file of result.outputFiles) {
    fs.mkdirSync(path.dirname(file.path), { recursive: true });
    fs.writeFileSync(file.path + suffix, file.contents);
    fs.renameSync(file.path + suffix, file.path);
  }
}

export function supervisorLog(dataDir: string): string {
  return path.join(dataDir, "logs", "supervisor.log");
}

/** The recorded supervisor, if it still runs. */
export function runningSupervisor(file: ServicesFile): SupervisorRecord | undefined {
  return file.supervisor !== undefined && isRunning(file.supervisor) ? file.supervisor : undefined;
}

/**
 * Starts a supervisor for the services recorded in the data directory, in a
 * session of its own (it outlives the CLI), and waits until it has recorded
 * itself in services.json. Throws with its log's last lines if it does not.
 */
export async function startSupervisor(dataDir: string, healthTimeoutMs: number, timeoutMs = 20_000): Promise<SupervisorRecord> {
  await buildSupervisor();
  const log = supervisorLog(dataDir);
  fs.mkdirSync(path.dirname(log), { recursive: true });
  const fd = fs.openSync(log, "a");
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(process.execPath, [bundle, "--data-dir", dataDir, "--health-timeout-ms", String(healthTimeoutMs)], {
      cwd: repoRoot,
      env: process.env,
      detached: true,
      stdio: ["ignore", fd, fd],
    });
  } finally {
    fs.closeSync(fd);
  }
  let exit: string | undefined;
  child.once("exit", (code, signal) => (exit = signal === null ? `exited with code ${code}` : `killed by ${signal}`));
  child.once("error", (err) => (exit = `could not start: ${err.message}`));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && exit === undefined) {
    const record = readServicesFile(dataDir)?.supervisor;
    if (record !== undefined && record.pid === child.pid) return record;
    await sleep(50);
  }
  if (exit === undefined && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
  const tail = tailLines(log, 10)
    .map((l) => `  ${l}`)
    .join("\n");
  throw new Error(`the supervisor ${exit ?? `did not start within ${timeoutMs / 1000} s`}; last lines of ${log}:\n${tail}`);
}

/**
 * Stops the recorded supervisor (SIGTERM: it exits at once, leaving the
 * services; a foreground `clipper up` stops them first, hence the long
 * bound), SIGKILL after `waitMs`. Returns once it is gone.
 */
export async function stopSupervisor(file: ServicesFile, waitMs = 60_000): Promise<void> {
  const record = runningSupervisor(file);
  if (record === undefined) return;
  try {
    process.kill(record.pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + waitMs;
  while (isRunning(record) && Date.now() < deadline) await sleep(20);
  if (isRunning(record)) {
    try {
      process.kill(record.pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
    const killDeadline = Date.now() + 2000;
    while (isRunning(record) && Date.now() < killDeadline) await sleep(20);
  }
}
