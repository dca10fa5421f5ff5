// The router's front door: what a composition root (the router's own main.ts,
// a gateway running the router in its process) and the tests may use.
// Everything else in services/router is its own business.
export { inProcessRouterConfig, type RouterConfig, routerCoreSettings, routerSpec } from "./config.js";
export { Exp3Policy } from "./policies/exp3-policy.js";
export { Exp4Policy } from "./policies/exp4-policy.js";
export type { Answers, QueryOutcome } from "./query-observer.js";
export { NO_MODEL_EXPLANATION, type QueryOptions, SLO_EXPLANATION } from "./query-processor.js";
export { QueryStreamSession } from "./query-stream.js";
export {
  createRouterCore,
  type RouterCore,
  type RouterCoreOptions,
  type RouterOptions,
  type RunningRouter,
  startRouter,
} from "./router.js";
export type { RouterQuery } from "./service.js";
