// Opt-in soak test (issue 6): a steady open-loop load at a fraction of the measured
// capacity for a long time, checking that memory stays flat and p99 stays stable.
// Not part of CI (it takes 10 minutes by default).
//   node --import tsx bench/soak.ts [--minutes 10] [--fraction 0.7] [--window-s 30]
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestSystem } from "../test/system.js";
import { benchDir, pythonModel } from "./deploy.js";
import { uniqueMix } from "./loadgen/inputs.js";
import { type LoadResult, runClosedLoop, runOpenLoop } from "./loadgen/loadgen.js";
import { gatewayDefault, restTarget } from "./loadgen/targets.js";

interface SoakOptions {
  minutes: number;
  fraction: number;
  windowS: number;
}

function parseOptions(argv: string[]): SoakOptions {
  const value = (name: string, fallback: number, min: number, max: number) => {
    const i = argv.indexOf(name);
    const v = i < 0 ? fallback : Number(argv[i + 1]);
    if (!(v >= min && v <= max)) throw new Error(`${name} must be between ${min} and ${max}`);
    return v;
  };
  return { minutes: value("--minutes", 10, 0.5, 120), fraction: value("--fraction", 0.7, 0.05, 1), windowS: value("--window-s", 30, 5, 300) };
}

/** Resident memory of a process and its descendants, in MiB (Linux /proc). */
function treeRssMiB(root: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // the process ended while we looked
    }
  }
  let kib = 0;
  const visit = (pid: number) => {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      kib += Number(m?.[1] ?? 0);
    } catch {
      return;
    }
    for (const c of children.get(pid) ?? []) visit(c);
  };
  visit(root);
  return kib / 1024;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const system = new TestSystem();
  process.once("SIGINT", () => void system.stop().finally(() => process.exit(130)));
  try {
    await system.start();
    await system.deployApp("soak", pythonModel("soak-noop", "noop.py"), { timeoutSeconds: 120 });
    const mix = uniqueMix("soak", [1, 2, 3, 4]);
    const target = restTarget({ url: `${system.gatewayUrl}/soak/predict`, mix, connections: 64, isDefault: gatewayDefault });
    try {
      const capacity = await runClosedLoop({ send: target.send, concurrency: 64, durationMs: 10_000, warmupMs: 2_000 });
      const rate = Math.max(1, Math.floor(capacity.throughput * options.fraction));
      console.log(`capacity at c=64: ${capacity.throughput.toFixed(0)}/s; soaking at ${rate}/s for ${options.minutes} min`);
      const services = ["gateway", "router", "registry", "container-manager"] as const;
      const windows: Array<{ minute: number; result: LoadResult; rssMiB: Record<string, number> }> = [];
      const windowsTotal = Math.max(1, Math.round((options.minutes * 60) / options.windowS));
      for (let w = 0; w < windowsTotal; w++) {
        const result = await runOpenLoop({ send: target.send, ratePerSecond: rate, maxInFlight: 1024, durationMs: options.windowS * 1000, warmupMs: 0 });
        const rssMiB = Object.fromEntries(services.map((s) => [s, treeRssMiB(system.pid(s) ?? 0)]));
        windows.push({ minute: ((w + 1) * options.windowS) / 60, result, rssMiB });
        console.log(
          `${windows.at(-1)?.minute.toFixed(1).padStart(5)} min  ${result.throughput.toFixed(0)}/s  p50 ${result.p50Ms.toFixed(2)} ms  p99 ${result.p99Ms.toFixed(2)} ms  ` +
            `defaults ${(result.defaultRate * 100).toFixed(2)}%  errors ${(result.errorRate * 100).toFixed(2)}%  RSS ${services.map((s) => `${s} ${rssMiB[s]?.toFixed(0)}`).join(", ")} MiB`,
        );
      }
      // Flat memory: the last window's RSS against the second's (after warm-up), per service.
      const second = windows[Math.min(1, windows.length - 1)];
      const last = windows.at(-1);
      const growth = Object.fromEntries(services.map((s) => [s, (last?.rssMiB[s] ?? 0) / Math.max(1, second?.rssMiB[s] ?? 1)]));
      const p99s = windows.map((w) => w.result.p99Ms).sort((a, b) => a - b);
      const medianP99 = p99s[Math.floor(p99s.length / 2)] ?? 0;
      const summary = {
        date: new Date().toISOString(),
        options,
        capacityPerS: capacity.throughput,
        ratePerS: rate,
        rssGrowth: growth,
        medianWindowP99Ms: medianP99,
        worstWindowP99Ms: p99s.at(-1) ?? 0,
        memoryFlat: Object.values(growth).every((g) => g < 1.2),
        p99Stable: (p99s.at(-1) ?? 0) <= 3 * medianP99,
        windows: windows.map((w) => ({ minute: w.minute, rssMiB: w.rssMiB, ...w.result })),
      };
      mkdirSync(join(benchDir, "out"), { recursive: true });
      writeFileSync(join(benchDir, "out", "soak.json"), JSON.stringify(summary, null, 2));
      console.log(
        `memory flat (last/second window < 1.2x per service): ${summary.memoryFlat} ${JSON.stringify(growth)}; ` +
          `p99 stable (worst window <= 3x median): ${summary.p99Stable} (median ${medianP99.toFixed(2)} ms, worst ${summary.worstWindowP99Ms.toFixed(2)} ms)`,
      );
      console.log("written to bench/out/soak.json");
    } finally {
      target.close();
    }
  } finally {
    await system.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
