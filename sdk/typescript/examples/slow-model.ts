import type { ModelInput } from "../src/index.js";
import sumModel from "./sum-model.js";

/** The sum model after sleeping CLIPPER_SLEEP_MS (default 1000) per batch: for latency SLO tests. */
const sleepMs = Number(process.env.CLIPPER_SLEEP_MS ?? "1000");

export default async function slowModel(inputs: ModelInput[]): Promise<string[]> {
  await new Promise((resolve) => setTimeout(resolve, Number.isFinite(sleepMs) && sleepMs >= 0 ? sleepMs : 1000));
  return sumModel(inputs);
}
