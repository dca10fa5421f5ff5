// wrk (Debian's /usr/bin/wrk, a C HTTP/1.1 load generator): a closed loop of -c connections POSTing
// one JSON body. Its Lua script counts every answer that is not a 200 as an error (wrk itself only
// counts sockets' errors), optionally the answers carrying a default marker, and prints the figures
// as one JSON line from done(), latency percentiles included (µs, from wrk's own histogram).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runClient } from "./external-client.js";
import type { LoadResult } from "./loadgen.js";

export const wrkPath = "wrk";

export interface WrkScriptOptions {
  body: string;
  /** A string whose presence in a 200's body marks the application's default answer (our gateway's). */
  defaultMarker?: string;
}

/** The marker of a JSON line printed by the script's done(). */
const RESULT_PREFIX = "wrk-result ";

/** The Lua script: a POST of `body`, each thread counting bad answers and defaults, summed in done(). */
export function wrkPostScript(options: WrkScriptOptions): string {
  // Long brackets: the body is sent as is, whatever quotes it holds (no "]" + level inside, so the closer is the last).
  const longString = (text: string) => {
    let level = "";
    while (text.includes(`]${level}`)) level += "=";
    return `[${level}[${text}]${level}]`;
  };
  const marker = options.defaultMarker === undefined ? "nil" : longString(options.defaultMarker);
  return `wrk.method = "POST"
wrk.body = ${longString(options.body)}
wrk.headers["Content-Type"] = "application/json"
local default_marker = ${marker}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; defaults = 0 end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1
  elseif default_marker ~= nil and body ~= nil and string.find(body, default_marker, 1, true) then defaults = defaults + 1 end
end
function done(summary, latency, requests)
  local bad_total, defaults_total = 0, 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + (t:get("bad") or 0)
    defaults_total = defaults_total + (t:get("defaults") or 0)
  end
  local e = summary.errors
  io.write(string.format('${RESULT_PREFIX}{"requests":%d,"duration_us":%d,"bad":%d,"defaults":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, bad_total, defaults_total, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
`;
}

/** Writes the script into `dir` (a temporary folder the caller removes) and returns its path. */
export function writeWrkPostScript(dir: string, name: string, options: WrkScriptOptions): string {
  const path = join(dir, `${name}.lua`);
  writeFileSync(path, wrkPostScript(options));
  return path;
}

export interface WrkResult extends Pick<LoadResult, "p50Ms" | "p90Ms" | "p99Ms" | "p999Ms" | "maxMs" | "meanMs"> {
  requests: number;
  durationS: number;
  /** Answers other than 200. */
  bad: number;
  defaults: number;
  /** Connect, read, write errors and timeouts. */
  socketErrors: number;
}

/** The JSON line the script's done() printed. */
export function parseWrkResult(out: string): WrkResult {
  const line = out.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
  if (line === undefined) throw new Error(`wrk printed no result line (is the script's done() missing?):\n${out.slice(-2000)}`);
  const r = JSON.parse(line.slice(RESULT_PREFIX.length)) as Record<string, number>;
  const field = (name: string) => {
    const value = r[name];
    if (typeof value !== "number" || !Number.isFinite(value)) throw new Error(`wrk result without ${name}: ${line}`);
    return value;
  };
  const ms = (name: string) => field(name) / 1000;
  return {
    requests: field("requests"),
    durationS: field("duration_us") / 1e6,
    bad: field("bad"),
    defaults: field("defaults"),
    socketErrors: field("socket_errors"),
    p50Ms: ms("p50_us"),
    p90Ms: ms("p90_us"),
    p99Ms: ms("p99_us"),
    p999Ms: ms("p999_us"),
    maxMs: ms("max_us"),
    meanMs: ms("mean_us"),
  };
}

export interface WrkRunOptions {
  url: string;
  scriptPath: string;
  concurrency: number;
  durationS: number;
}

/** One wrk run: -c concurrency connections on min(concurrency, 2) threads (the machine's cores here). */
export async function runWrk(options: WrkRunOptions): Promise<WrkResult & { clientCpuMs: number }> {
  if (!/^http:\/\/127\.0\.0\.1:/.test(options.url)) throw new Error(`the load generator only targets 127.0.0.1, not ${options.url}`);
  const threads = Math.min(2, options.concurrency);
  // wrk takes whole seconds only.
  const seconds = Math.max(1, Math.round(options.durationS));
  const args = ["-t", String(threads), "-c", String(options.concurrency), "-d", `${seconds}s`, "-s", options.scriptPath, options.url];
  const run = await runClient(wrkPath, args, (seconds + 60) * 1000);
  return { ...parseWrkResult(`${run.stdout}${run.stderr}`), clientCpuMs: run.cpuMs };
}

/** A wrk run as a closed-loop point: every answer counted (a 200, a default or a bad answer), socket errors as errors. */
export function wrkLoadResult(r: WrkResult, concurrency: number): LoadResult {
  const errors = r.bad + r.socketErrors;
  const ok = Math.max(0, r.requests - r.bad - r.defaults);
  const answered = r.requests - r.bad;
  const counted = Math.max(1, r.requests + r.socketErrors);
  return {
    mode: "closed",
    concurrency,
    targetRate: null,
    durationS: r.durationS,
    requests: r.requests + r.socketErrors,
    ok,
    defaults: r.defaults,
    errors,
    dropped: 0,
    throughput: answered / r.durationS,
    goodput: ok / r.durationS,
    defaultRate: r.defaults / counted,
    errorRate: errors / counted,
    p50Ms: r.p50Ms,
    p90Ms: r.p90Ms,
    p99Ms: r.p99Ms,
    p999Ms: r.p999Ms,
    maxMs: r.maxMs,
    meanMs: r.meanMs,
    firstError: errors > 0 ? `wrk: ${r.bad} answers not 200, ${r.socketErrors} socket errors` : null,
  };
}
