// h2load (Debian's nghttp2-client, a C HTTP/2 load generator) as a gRPC client: a closed loop of
// unary calls, each a POST of one length-prefixed protobuf message with gRPC's headers. It costs
// about what wrk costs per request, where ghz costs six times as much (its dynamic messages and
// per-call records), so on two shared cores it shows what the server gives rather than the client.
// It reads HTTP statuses only, not gRPC's grpc-status trailer: callers check the answers another
// way (one ghz call before timing, the server's own counters after).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runClient } from "./external-client.js";

export const h2loadPath = "h2load";

/** The body of a unary gRPC call: the uncompressed-flag byte, the message's length (4 bytes, big-endian), the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

export interface H2loadOptions {
  /** host:port, 127.0.0.1 only. */
  target: string;
  /** The full method path, e.g. /clipper.v1.PredictionService/Predict. */
  path: string;
  /** The request message, serialized. */
  message: Uint8Array;
  /** Calls in flight at once: spread over `connections` connections, concurrency / connections streams each. */
  concurrency: number;
  connections?: number;
  durationS: number;
  /** A directory for the request body and the per-call log. */
  workDir: string;
}

export interface H2loadResult {
  /** Calls answered with HTTP 200 per second of the run. */
  rps: number;
  requests: number;
  /** Calls not answered with a 2xx, or that failed, errored or timed out. */
  errors: number;
  p50Ms: number;
  p99Ms: number;
  clientCpuMs: number;
}

/** The arguments of one run (also used for a one-call check with `-n 1`). */
export function h2loadArgs(options: Omit<H2loadOptions, "durationS">, bodyPath: string): string[] {
  if (!options.target.startsWith("127.0.0.1:")) throw new Error(`the load generator only targets 127.0.0.1, not ${options.target}`);
  const connections = options.connections ?? Math.min(4, options.concurrency);
  if (options.concurrency % connections !== 0) throw new Error(`h2load: ${options.concurrency} calls do not spread evenly over ${connections} connections`);
  return [
    "-c",
    String(connections),
    "-m",
    String(options.concurrency / connections),
    "-t",
    "1",
    "-d",
    bodyPath,
    "-H",
    "content-type: application/grpc",
    "-H",
    "te: trailers",
    `http://${options.target}${options.path}`,
  ];
}

export async function runH2load(options: H2loadOptions): Promise<H2loadResult> {
  const bodyPath = join(options.workDir, "h2load-body.bin");
  const logPath = join(options.workDir, "h2load-calls.tsv");
  writeFileSync(bodyPath, grpcFrame(options.message));
  writeFileSync(logPath, "");
  const run = await runClient(
    h2loadPath,
    [...h2loadArgs(options, bodyPath), "-D", String(options.durationS), "--log-file", logPath],
    (options.durationS + 60) * 1000,
  );
  const summary = parseH2loadSummary(run.stdout);
  const latencies = callLatenciesMs(readFileSync(logPath, "utf8"));
  return {
    rps: summary.ok / options.durationS,
    requests: summary.ok,
    errors: summary.total - summary.ok,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    clientCpuMs: run.cpuMs,
  };
}

export interface H2loadSummary {
  /** Calls done. */
  total: number;
  /** Calls that succeeded with a 2xx status. */
  ok: number;
}

/** h2load's "requests:" and "status codes:" lines. */
export function parseH2loadSummary(out: string): H2loadSummary {
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const status = /status codes: (\d+) 2xx/.exec(out);
  if (requests === null || status === null) throw new Error(`h2load output not understood:\n${out.slice(-2000)}`);
  const done = Number(requests[3]);
  return { total: done, ok: Math.min(Number(requests[4]), Number(status[1])) };
}

/** Each call's time (ms) from h2load's --log-file: start (µs since the epoch), HTTP status, duration (µs), tab-separated. */
export function callLatenciesMs(log: string): number[] {
  const out: number[] = [];
  for (const line of log.split("\n")) {
    const micros = line.split("\t")[2];
    if (micros !== undefined && micros !== "") out.push(Number(micros) / 1000);
  }
  return out.sort((a, b) => a - b);
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
