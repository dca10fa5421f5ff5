// ghz (github.com/bojand/ghz, a Go gRPC load generator): its arguments for the methods the benchmarks
// drive, and its summary text. Installed at .tools/bin/ghz:
//   GOBIN=$PWD/.tools/bin go install github.com/bojand/ghz/cmd/ghz@latest
import { join } from "node:path";
import { repoRoot } from "../../test/system.js";
import { runClient } from "./external-client.js";
import type { LoadResult } from "./loadgen.js";

export const ghzPath = join(repoRoot, ".tools", "bin", "ghz");

/** The gRPC methods the benchmarks drive with ghz: the .proto file (under proto/) and the full method name. */
export const GHZ_CALLS = {
  predict: { proto: "clipper/v1/prediction_service.proto", call: "clipper.v1.PredictionService/Predict" },
  oipModelInfer: { proto: "inference/grpc_predict_v2.proto", call: "inference.GRPCInferenceService/ModelInfer" },
} as const;

/**
 * A closed loop of `concurrency` callers sending `request` (the method's request message as JSON) to target
 * over `connections` HTTP/2 connections (ghz's default is one for every caller; a few by default here, as a
 * pool of clients would open); add -n or -z.
 */
export function ghzArgs(
  target: string,
  method: keyof typeof GHZ_CALLS,
  request: string,
  concurrency: number,
  connections = Math.min(4, concurrency),
): string[] {
  if (!target.startsWith("127.0.0.1:")) throw new Error(`the load generator only targets 127.0.0.1, not ${target}`);
  const proto = join(repoRoot, "proto");
  return [
    "--insecure",
    "--proto",
    join(proto, GHZ_CALLS[method].proto),
    "--import-paths",
    proto,
    "--call",
    GHZ_CALLS[method].call,
    "-d",
    request,
    "-c",
    String(concurrency),
    "--connections",
    String(connections),
    target,
  ];
}

export interface GhzSummary {
  rps: number;
  /** Calls made, answered or not (ghz's Count). */
  count: number;
  /** Wall time of the run (ghz's Total). */
  totalS: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  ok: number;
  /** Each distinct error ghz reports, with its count, except the calls a -z run cuts when it ends. */
  errors: { count: number; message: string }[];
}

/** A duration as ghz prints it (ns, µs, ms, s) in milliseconds; NaN when absent. */
function ghzMs(value: string | undefined, unit: string | undefined): number {
  if (value === undefined || unit === undefined) return Number.NaN;
  const factor = { ns: 1e-6, µs: 1e-3, us: 1e-3, ms: 1, s: 1000 }[unit];
  if (factor === undefined) throw new Error(`ghz unit ${unit} not understood`);
  return Number(value) * factor;
}

/** ghz's summary text (its JSON format carries every call's details: tens of MB at these rates). */
export function parseGhzSummary(out: string): GhzSummary {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (rps === undefined || !/Summary:/.test(out)) throw new Error(`ghz output not understood:\n${out}`);
  // No [OK] line when no call was answered (a short run cut before the first answer).
  const ok = /\[OK\]\s+(\d+) responses/.exec(out)?.[1] ?? "0";
  const duration = (label: RegExp) => {
    const m = label.exec(out);
    return ghzMs(m?.[1], m?.[2]);
  };
  const percentile = (p: number) => duration(new RegExp(`^\\s+${p} % in ([\\d.]+) (ns|µs|us|ms|s)\\b`, "m"));
  // A -z run ends by closing its connections under the calls in flight ("transport is closing"): not the server's errors.
  const errors = [...out.matchAll(/^\s+\[(\d+)\]\s+(.*?)\s*$/gm)]
    .filter((m) => !/transport is closing|context canceled|client connection is closing/.test(m[2] ?? ""))
    .map((m) => ({ count: Number(m[1]), message: m[2] ?? "" }));
  return {
    rps: Number(rps),
    count: Number(/Count:\s+(\d+)/.exec(out)?.[1] ?? ok),
    totalS: duration(/Total:\s+([\d.]+) (ns|µs|us|ms|s)\b/) / 1000,
    p50Ms: percentile(50),
    p90Ms: percentile(90),
    p99Ms: percentile(99),
    meanMs: duration(/Average:\s+([\d.]+) (ns|µs|us|ms|s)\b/),
    maxMs: duration(/Slowest:\s+([\d.]+) (ns|µs|us|ms|s)\b/),
    ok: Number(ok),
    errors,
  };
}

/** One ghz run of `durationS` (its arguments from ghzArgs), with the CPU time it used. */
export async function runGhz(args: string[], durationS: number): Promise<GhzSummary & { clientCpuMs: number }> {
  const run = await runClient(ghzPath, [...args, "-z", `${durationS}s`], (durationS + 60) * 1000);
  return { ...parseGhzSummary(run.stdout), clientCpuMs: run.cpuMs };
}

/** A ghz run as a closed-loop point (ghz sees no application default: the answers are checked before timing). */
export function ghzLoadResult(s: GhzSummary, concurrency: number): LoadResult {
  const errors = s.errors.reduce((n, e) => n + e.count, 0);
  const requests = s.ok + errors;
  return {
    mode: "closed",
    concurrency,
    targetRate: null,
    durationS: s.totalS,
    requests,
    ok: s.ok,
    defaults: 0,
    errors,
    dropped: 0,
    throughput: s.ok / s.totalS,
    goodput: s.ok / s.totalS,
    defaultRate: 0,
    errorRate: errors / Math.max(1, requests),
    p50Ms: s.p50Ms,
    p90Ms: s.p90Ms,
    p99Ms: s.p99Ms,
    // ghz prints no 99.9th percentile.
    p999Ms: Number.NaN,
    maxMs: s.maxMs,
    meanMs: s.meanMs,
    firstError: s.errors[0] === undefined ? null : `ghz: ${s.errors[0].message.slice(0, 200)}`,
  };
}
