// The console's front door: what a composition root and the tests may use (its API's JSON types).
export type * from "./console-api.js";
