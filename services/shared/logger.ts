import pino from "pino";
import pretty from "pino-pretty";
import { activeTraceIds } from "./tracing.js";

export type Logger = pino.Logger;

export type LogFormat = "json" | "pretty";

export interface LoggerOptions {
  /** The service name, added to every line. */
  service: string;
  /** Defaults to CLIPPER_LOG_LEVEL, else "info". */
  level?: string;
  /** Defaults to CLIPPER_LOG_FORMAT, else "pretty" when stdout is a terminal and JSON otherwise. */
  format?: LogFormat;
}

/**
 * Structured JSON logs on stdout, one object per line; lines written while a
 * trace span is active carry its `trace_id` and `span_id`, so a log line leads
 * to its trace. Human-readable (pino-pretty) on a terminal. Secrets are never
 * passed to the logger.
 */
export function createLogger(options: LoggerOptions): Logger {
  const format = options.format ?? logFormat(process.env.CLIPPER_LOG_FORMAT, process.stdout.isTTY === true);
  const settings: pino.LoggerOptions = {
    name: options.service,
    level: options.level ?? process.env.CLIPPER_LOG_LEVEL ?? "info",
    base: { service: options.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: () => activeTraceIds() ?? {},
  };
  // pino-pretty as a stream (not a transport) writes synchronously: no worker thread, nothing lost at exit.
  return format === "pretty" ? pino(settings, pretty({ colorize: true, sync: true })) : pino(settings);
}

/** The log format from CLIPPER_LOG_FORMAT ("json" | "pretty"), else by whether stdout is a terminal. */
export function logFormat(raw: string | undefined, isTerminal: boolean): LogFormat {
  if (raw === "json" || raw === "pretty") return raw;
  if (raw !== undefined && raw !== "") throw new Error(`CLIPPER_LOG_FORMAT must be "json" or "pretty", got "${raw}"`);
  return isTerminal ? "pretty" : "json";
}
