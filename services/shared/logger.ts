import pino from "pino";

export type Logger = pino.Logger;

export interface LoggerOptions {
  /** The service name, added to every line. */
  service: string;
  level?: string;
}

/**
 * Structured JSON logs on stdout; the level comes from the option or
 * CLIPPER_LOG_LEVEL. Secrets are never passed to the logger.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino({
    name: options.service,
    level: options.level ?? process.env["CLIPPER_LOG_LEVEL"] ?? "info",
    base: { service: options.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
