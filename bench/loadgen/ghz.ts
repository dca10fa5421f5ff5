// ghz (github.com/bojand/ghz, a Go gRPC load generator): its arguments for the methods the benchmarks
// drive, and its summary text. Installed at .tools/bin/ghz:
//   GOBIN=$PWD/.tools/bin go install github.com/bojand/ghz/cmd/ghz@latest
import { join } from "node:path";
import { repoRoot } from "../../test/system.js";

export const ghzPath = join(repoRoot, ".tools", "bin", "ghz");

/** The gRPC methods the benchmarks drive with ghz: the .proto file (under proto/) and the full method name. */
export const GHZ_CALLS = {
  predict: { proto: "clipper/v1/prediction_service.proto", call: "clipper.v1.PredictionService/Predict" },
  oipModelInfer: { proto: "inference/grpc_predict_v2.proto", call: "inference.GRPCInferenceService/ModelInfer" },
} as const;

/** A closed loop of `concurrency` callers sending `request` (the method's request message as JSON) to target; add -n or -z. */
export function ghzArgs(target: string, method: keyof typeof GHZ_CALLS, request: string, concurrency: number): string[] {
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
    // ghz's default is one connection for every caller; a few, as a pool of clients would open.
    "--connections",
    String(Math.min(4, concurrency)),
    target,
  ];
}

export interface GhzSummary {
  rps: number;
  p99Ms: number;
  ok: number;
  /** Each distinct error ghz reports, with its count, except the calls a -z run cuts when it ends. */
  errors: { count: number; message: string }[];
}

/** ghz's summary text (its JSON format carries every call's details: tens of MB at these rates). */
export function parseGhzSummary(out: string): GhzSummary {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  const p99 = /99 % in ([\d.]+) (ms|s|µs|us)/.exec(out);
  const ok = /\[OK\]\s+(\d+) responses/.exec(out)?.[1];
  if (rps === undefined || ok === undefined) throw new Error(`ghz output not understood:\n${out}`);
  const unit = p99?.[2] === "s" ? 1000 : p99?.[2] === "ms" ? 1 : 0.001;
  // A -z run ends by closing its connections under the calls in flight ("transport is closing"): not the server's errors.
  const errors = [...out.matchAll(/^\s+\[(\d+)\]\s+(.*?)\s*$/gm)]
    .filter((m) => !/transport is closing|context canceled|client connection is closing/.test(m[2] ?? ""))
    .map((m) => ({ count: Number(m[1]), message: m[2] ?? "" }));
  return { rps: Number(rps), p99Ms: p99 ? Number(p99[1]) * unit : Number.NaN, ok: Number(ok), errors };
}
