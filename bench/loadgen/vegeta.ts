// Load from vegeta (Go, github.com/tsenart/vegeta), for the phases where the
// Node generator is the bottleneck: on two shared cores it offers at most
// about 6-8k requests/s, while vegeta's open loop keeps its schedule well past
// that. Open loop: `-rate R/s`; closed loop: `-rate 0 -max-workers N` (N
// workers, each sending its next request when its previous one is answered).
// Every request's body is unique (a cache can never hit); its results are read
// back with `vegeta encode --to csv`, one line per request.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { runClient } from "./external-client.js";
import type { InputMix } from "./inputs.js";

/** Where vegeta is: CLIPPER_VEGETA, else .tools/bin/vegeta (`GOBIN=$PWD/.tools/bin go install github.com/tsenart/vegeta/v12@v12.12.0`). */
export function vegetaPath(repoRoot: string): string | undefined {
  const path = process.env.CLIPPER_VEGETA ?? join(repoRoot, ".tools", "bin", "vegeta");
  return existsSync(path) ? path : undefined;
}

export interface VegetaOptions {
  vegeta: string;
  url: string;
  mix: InputMix;
  /** The first request's sequence number: phases use disjoint ranges, so no input repeats across them. */
  firstSequence: number;
  /** Open loop at this rate; absent: closed loop with `workers` clients. */
  ratePerSecond?: number;
  /** Closed loop: clients. Open loop: an upper bound on concurrent requests (vegeta's -max-workers). */
  workers: number;
  /** Requests sent during it are not reported. */
  warmupMs: number;
  durationMs: number;
  timeoutMs: number;
  /** A hard bound on the targets written, whatever the rate. */
  maxRequests: number;
}

export interface VegetaResult {
  /** Milliseconds since the attack began. */
  sentAtMs: number;
  status: number;
  latencyMs: number;
  body: string;
  /** vegeta's error for this request ("" when it got an HTTP answer). */
  error: string;
}

export interface VegetaRun {
  /** Requests reported (sent after the warm-up). */
  reported: number;
  /** CPU time (ms) the attack took, warm-up included, sampled every 100 ms (the last sample before it exits). */
  cpuMs: number;
  /** Requests sent, warm-up included. */
  sent: number;
}

/** Runs one attack; calls `record` for every request sent after the warm-up. */
export async function runVegeta(options: VegetaOptions, record: (r: VegetaResult) => void): Promise<VegetaRun> {
  const url = new URL(options.url);
  if (url.hostname !== "127.0.0.1") throw new Error(`the load generator only targets 127.0.0.1, not ${url.hostname}`);
  const seconds = (options.warmupMs + options.durationMs) / 1000;
  // Open loop: the schedule and 10% spare. Closed loop: more than two shared cores answer (50k/s), refusals included;
  // past the targets vegeta starts over from the first, so inputs would repeat.
  const planned = (options.ratePerSecond === undefined ? 50_000 : options.ratePerSecond * 1.1) * seconds;
  const targets = Math.min(options.maxRequests, Math.ceil(planned));
  const dir = mkdtempSync(join(tmpdir(), "clipper-vegeta-"));
  try {
    const targetsFile = join(dir, "targets.jsonl");
    await writeTargets(targetsFile, options, targets);
    const resultsFile = join(dir, "results.bin");
    const args = [
      "attack",
      "-format=json",
      `-targets=${targetsFile}`,
      `-output=${resultsFile}`,
      `-duration=${seconds}s`,
      `-timeout=${options.timeoutMs}ms`,
      `-max-workers=${options.workers}`,
      `-workers=${Math.min(options.workers, 64)}`,
      `-max-connections=${options.workers}`,
      ...(options.ratePerSecond === undefined ? ["-rate=0"] : [`-rate=${Math.round(options.ratePerSecond)}/s`]),
    ];
    // CLIPPER_VEGETA_NICE: the generator at a lower priority (runClient).
    const { cpuMs } = await runClient(options.vegeta, args, seconds * 1000 + 60_000, Number(process.env.CLIPPER_VEGETA_NICE ?? 0));
    const encode = spawn(options.vegeta, ["encode", "--to", "csv", resultsFile], { stdio: ["ignore", "pipe", "inherit"] });
    let first: number | undefined;
    let reported = 0;
    let sent = 0;
    for await (const line of createInterface({ input: encode.stdout })) {
      const fields = line.split(",");
      const at = Number(fields[0]) / 1e6;
      first ??= at;
      sent++;
      if (at - first < options.warmupMs) continue;
      reported++;
      record({
        sentAtMs: at - first,
        status: Number(fields[1]),
        latencyMs: Number(fields[2]) / 1e6,
        error: fields[5] ?? "",
        body: Buffer.from(fields[6] ?? "", "base64").toString("utf8"),
      });
    }
    const [code] = await once(encode, "exit");
    if (code !== 0) throw new Error(`vegeta encode exited with ${code}`);
    return { reported, cpuMs, sent };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function writeTargets(file: string, options: VegetaOptions, count: number): Promise<void> {
  const out = createWriteStream(file);
  const header = { "Content-Type": ["application/json"] };
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(options.mix.restBody(options.firstSequence + i)).toString("base64");
    const line = `${JSON.stringify({ method: "POST", url: options.url, body, header })}\n`;
    if (!out.write(line)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}
