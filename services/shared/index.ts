// The small internal package every service shares. Export list is explicit on purpose.
export { createGrpcTransport } from "./grpc-transport.js";
export type { GrpcTransport, GrpcTransportOptions } from "./grpc-transport.js";
export { startGrpcServer, registration, serviceDefinition } from "./grpc-server.js";
export type { GrpcServerOptions, RunningGrpcServer, ServiceRegistration } from "./grpc-server.js";
export { HealthStatus, createHealthImpl } from "./health.js";
export type { ServingState } from "./health.js";
export { createLogger, logFormat } from "./logger.js";
export type { Logger, LogFormat } from "./logger.js";
export {
  Code,
  ConnectError,
  invalidArgument,
  notFound,
  alreadyExists,
  failedPrecondition,
  unavailable,
  resourceExhausted,
  deadlineExceeded,
} from "./errors.js";
export { loadConfig, loadServiceConfig, commonOptions, usage, parse, defaults, ConfigError } from "./config.js";
export type { Option, ConfigOf } from "./config.js";
export { createMetricsRegistry, startMetricsServer, prom, batchSizeBuckets, defaultLatencyBuckets, parseBuckets, latencyBucketsOption } from "./metrics.js";
export type { MetricsServer } from "./metrics.js";
export {
  parseInputType,
  inputTypeName,
  inputCount,
  validateInputs,
  selectInputs,
  splitInputs,
  concatInputs,
} from "./inputs.js";
export type { InputLimits } from "./inputs.js";
export { validateName, validateVersion } from "./names.js";
export { onShutdownSignal, exitOnStartupError } from "./process.js";
export { watchConfig } from "./config-watcher.js";
export type { ConfigWatcher, ConfigListener, WatchConfigOptions } from "./config-watcher.js";
export { applyConfigChange, emptyConfigView, viewFromSnapshot, modelKey } from "./config-view.js";
export type { ConfigView } from "./config-view.js";
export { Backoff } from "./backoff.js";
export { TurnBatches } from "./turn-batches.js";
export { Cancellation, type CancelSignal, toAbortSignal } from "./cancellation.js";
export { type OpenStreamCall, StreamCalls, type StreamNames } from "./stream-calls.js";
export type { BackoffOptions } from "./backoff.js";
export {
  ROLES,
  hashToken,
  generateToken,
  formatTokenLine,
  parseTokensFile,
  loadTokensFile,
  createTokenInFile,
  TokenAuthenticator,
  bearerToken,
  roleAllows,
  createAuthorizer,
  bearerInterceptor,
} from "./auth.js";
export type { Role, TokenRecord, Principal, Authorize, AuthorizerOptions } from "./auth.js";
export {
  securityOptions,
  loadTlsMaterial,
  mutualTlsServerCredentials,
  clientSecurity,
  serverSecurity,
  isLoopbackHost,
  assertLoopbackOrInsecure,
} from "./tls.js";
export type { TlsFiles, TlsMaterial, ClientSecurity, ServerSecurity, ServerSecurityConfig } from "./tls.js";
export {
  startTracing,
  tracingEnabled,
  tracer,
  withSpan,
  failSpan,
  extractTraceContext,
  injectTraceContext,
  traceFields,
  contextOfTraceFields,
  activeTraceIds,
  TraceAttributes,
  SpanKind,
  SpanStatusCode,
  trace,
  traceContext,
} from "./tracing.js";
export type { RunningTracing, TraceCarrier, TraceFields, Span, SpanLink, SpanAttributes, TraceContext } from "./tracing.js";
