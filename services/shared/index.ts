// The small internal package every service shares. Export list is explicit on purpose.

export type { Authorize, AuthorizerOptions, Principal, Role, TokenRecord } from "./auth.js";
export {
  bearerInterceptor,
  bearerToken,
  createAuthorizer,
  createTokenInFile,
  formatTokenLine,
  generateToken,
  hashToken,
  loadTokensFile,
  ON_BEHALF_OF_HEADER,
  parseTokensFile,
  ROLES,
  roleAllows,
  TokenAuthenticator,
} from "./auth.js";
export type { BackoffOptions } from "./backoff.js";
export { Backoff } from "./backoff.js";
export { binaryCodec } from "./binary-codec.js";
export { Cancellation, type CancelSignal, toAbortSignal } from "./cancellation.js";
export type { ConfigOf, Option } from "./config.js";
export { ConfigError, commonOptions, defaults, loadConfig, loadServiceConfig, parse, usage } from "./config.js";
export type { ConfigView } from "./config-view.js";
export { applyConfigChange, emptyConfigView, modelKey, viewFromSnapshot } from "./config-view.js";
export type { ConfigListener, ConfigWatcher, WatchConfigOptions } from "./config-watcher.js";
export { watchConfig } from "./config-watcher.js";
export {
  alreadyExists,
  Code,
  ConnectError,
  deadlineExceeded,
  failedPrecondition,
  invalidArgument,
  notFound,
  resourceExhausted,
  unavailable,
} from "./errors.js";
export type { GrpcServerOptions, RunningGrpcServer, ServiceRegistration } from "./grpc-server.js";
export { cancelSignalOf, registration, serviceDefinition, startGrpcServer } from "./grpc-server.js";
export type { GrpcTransport, GrpcTransportOptions } from "./grpc-transport.js";
export { createGrpcTransport } from "./grpc-transport.js";
export type { ServingState } from "./health.js";
export { createHealthImpl, HealthStatus } from "./health.js";
export type { InputLimits } from "./inputs.js";
export {
  concatInputs,
  inputCount,
  inputTypeName,
  numberProblem,
  parseInputType,
  selectInputs,
  splitInputs,
  stringProblem,
  validateInputs,
  validateInputValues,
} from "./inputs.js";
export type { LogFormat, Logger } from "./logger.js";
export { createLogger, logFormat } from "./logger.js";
export type { MetricsServer } from "./metrics.js";
export { batchSizeBuckets, createMetricsRegistry, defaultLatencyBuckets, latencyBucketsOption, parseBuckets, prom, startMetricsServer } from "./metrics.js";
export { validateName, validateVersion } from "./names.js";
export { exitOnStartupError, onShutdownSignal } from "./process.js";
export { replicaEndpoint, replicaTransport, speaksConnect } from "./replica-transport.js";
export { type OpenStreamCall, StreamCalls, type StreamNames } from "./stream-calls.js";
export type { ClientSecurity, ServerSecurity, ServerSecurityConfig, TlsFiles, TlsMaterial } from "./tls.js";
export {
  assertLoopbackOrInsecure,
  clientSecurity,
  isLoopbackHost,
  loadTlsMaterial,
  mutualTlsServerCredentials,
  securityOptions,
  serverSecurity,
} from "./tls.js";
export type { RunningTracing, Span, SpanAttributes, SpanLink, TraceCarrier, TraceContext, TraceFields } from "./tracing.js";
export {
  activeTraceIds,
  contextOfTraceFields,
  extractTraceContext,
  failSpan,
  injectTraceContext,
  SpanKind,
  SpanStatusCode,
  startTracing,
  TraceAttributes,
  trace,
  traceContext,
  traceFields,
  tracer,
  tracingEnabled,
  withSpan,
} from "./tracing.js";
export { TurnBatches } from "./turn-batches.js";
export { decodeUtf8KeepingErrors, wellFormed } from "./utf8.js";
