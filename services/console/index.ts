// The console's front door: what a composition root and the tests may use.

export { parseMetricsTargets } from "./config.js";
export type * from "./console-api.js";
