import { readFileSync } from "node:fs";

/** Busy and total jiffies summed over all CPUs, from /proc/stat (Linux); undefined elsewhere. */
function cpuTimes(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Cores busy on the whole machine over the next `windowMs`; undefined where /proc/stat is missing. */
export async function busyCores(windowMs: number, cores: number): Promise<number | undefined> {
  const before = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, windowMs));
  const after = cpuTimes();
  if (before === undefined || after === undefined || after.total === before.total) return undefined;
  return ((after.busy - before.busy) / (after.total - before.total)) * cores;
}

/**
 * Waits, at most `maxWaitMs`, for the machine to be quiet (fewer than
 * `threshold` cores busy while the benchmark itself is idle), and returns the
 * last reading. On a shared machine other people's work would otherwise be
 * measured as ours; the reading is reported with every point.
 */
export async function waitForQuiet(cores: number, threshold: number, maxWaitMs: number): Promise<number | undefined> {
  const end = Date.now() + maxWaitMs;
  let busy = await busyCores(500, cores);
  while (busy !== undefined && busy >= threshold && Date.now() < end) busy = await busyCores(500, cores);
  return busy;
}
