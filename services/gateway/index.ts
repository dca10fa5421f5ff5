// The gateway's front door: what a composition root and the tests may use.
export { AppKeys } from "./app-keys.js";
export { type GatewayOptions, type RunningGateway, startGateway } from "./gateway.js";
export type { Readiness } from "./readiness.js";
export { parseFeedbackBody, parseJsonObject, parsePredictBody, RestError } from "./rest-json.js";
export { type ConnectRouterOptions, connectRouter, ROUTER_CALLS, type RouterCalls, type RouterLink } from "./router-link.js";
export type { QueryRouter, RouterQuery } from "./router-stream.js";
