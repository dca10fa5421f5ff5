// The processes of a TestSystem under a benchmark: their CPU time, a model
// replica's pid, and the router's own timing of a model's queries.
import { readdirSync, readFileSync } from "node:fs";
import type { TestSystem } from "../../test/system.js";

/** CPU time (ms) a process has used, all threads, from /proc (10 ms ticks: summed over many calls). */
export function cpuMs(pid: number): number {
  if (pid === 0) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The process serving a model's replica: the one whose environment names the model (the container-manager sets CLIPPER_MODEL_NAME). */
export function replicaPid(modelName: string): number {
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      if (readFileSync(`/proc/${entry}/environ`, "latin1").split("\0").includes(`CLIPPER_MODEL_NAME=${modelName}`)) return Number(entry);
    } catch {
      // gone, or not ours
    }
  }
  return 0;
}

/** Sum and count of the router's queue-wait, model-call and batch-size histograms for one model. */
export async function routerTimes(system: TestSystem, modelName: string) {
  const text = await (await fetch(system.routerMetricsUrl())).text();
  const value = (series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(series) && l.includes(`model="${modelName}"`));
    return Number(line?.split(" ").pop() ?? 0);
  };
  return {
    queueWait: { sum: value("clipper_router_queue_wait_seconds_sum"), count: value("clipper_router_queue_wait_seconds_count") },
    model: { sum: value("clipper_router_model_duration_seconds_sum"), count: value("clipper_router_model_duration_seconds_count") },
    batchSize: { sum: value("clipper_router_batch_size_sum"), count: value("clipper_router_batch_size_count") },
  };
}
