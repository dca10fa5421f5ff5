// Summarises the V8 CPU profiles the services write under the bench:
//   CLIPPER_CPU_PROF_DIR=/tmp/prof bench/run.sh --no-ray --only '^clipper/noop-node' --duration 8
//   node --import tsx bench/cpu-profile.ts /tmp/prof [TOP]
// For each service: its busy CPU time, and the functions with the most self time.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [dir, topArg] = process.argv.slice(2);
if (dir === undefined) {
  console.error("usage: node --import tsx bench/cpu-profile.ts DIR [TOP]");
  process.exit(2);
}
const top = Number(topArg ?? 25);

// Main threads only (.0.); tsx's loader threads write profiles too.
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile") && f.includes(".0."))) {
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)?.callFrame;
    const delta = profile.timeDeltas[i] ?? 0;
    total += delta;
    if (frame === undefined) return;
    if (frame.functionName === "(idle)") {
      idle += delta;
      return;
    }
    const where = frame.url.replace(/.*node_modules\//, "").replace(/.*\/(services|sdk|gen|dist)\//, "$1/");
    const key = `${frame.functionName || "(anonymous)"} ${where}:${frame.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + delta);
  });
  // A service runs from its bundle (dist/<name>/main.mjs) or, in development, services/<name>/main.ts.
  const main = profile.nodes.map((n) => n.callFrame.url).find((u) => /(services|dist)\/[\w-]+\/main\.(ts|mjs)$/.test(u)) ?? "(not a service)";
  const busy = total - idle;
  console.log(`\n${main.replace(/.*(services|dist)\//, "")} (${file}): ${(busy / 1e6).toFixed(1)} s busy of ${(total / 1e6).toFixed(1)} s`);
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((us / busy) * 100).toFixed(1).padStart(6)}%  ${key}`);
  }
}
