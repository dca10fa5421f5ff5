// An external load generator (wrk, ghz, the Python and Java clients) run as a child process to
// completion, with the CPU time it used: on two cores the client's share is part of the figure.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

export interface ClientRun {
  stdout: string;
  /** Its end (a script's errors, warnings). */
  stderr: string;
  /** CPU time (ms) of the client, its threads and reaped children, last sampled while it ran (at most 100 ms missed). */
  cpuMs: number;
}

const MAX_STDOUT_CHARS = 1_000_000;
const MAX_STDERR_CHARS = 100_000;
const CPU_SAMPLE_MS = 100;

/** CPU time (ms) of a process, its threads and its children already reaped (the Python client's worker processes). */
export function treeCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) * 10;
}

/**
 * Runs `command` to completion, killed after `timeoutMs`; rejects on a non-zero exit with the end of its output.
 * `nice` (1-19) lowers its priority: it yields the shared cores to the system under test, as clients on other machines would.
 */
export function runClient(command: string, args: string[], timeoutMs: number, nice = 0): Promise<ClientRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    if (nice > 0 && child.pid !== undefined) os.setPriority(child.pid, Math.min(19, nice));
    let cpuMs = 0;
    const sampler = setInterval(() => {
      try {
        cpuMs = treeCpuMs(child.pid ?? 0);
      } catch {
        // exited between two samples
      }
    }, CPU_SAMPLE_MS);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      if (out.length < MAX_STDOUT_CHARS) out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      if (err.length < MAX_STDERR_CHARS) err += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      clearInterval(sampler);
      reject(e);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      clearInterval(sampler);
      if (code === 0) resolve({ stdout: out, stderr: err.slice(-2000), cpuMs });
      else reject(new Error(`${command} exited with ${code}:\n${err.slice(-2000)}${out.slice(-2000)}`));
    });
  });
}
