/**
 * What a command is given when it runs: its parsed flags and arguments, where
 * the services are, and their clients; with the readers that turn flags into
 * values or a UsageError naming the command.
 */
import type { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { parseInputType } from "../services/shared/index.js";
import type { ServiceAddresses } from "./addresses.js";
import type { KubernetesSystem } from "./kubernetes-system.js";
import type { ContainerManagerClient, ManagementClient } from "./management-commands.js";
import type { Output } from "./output.js";
import type { ProgressOptions } from "./progress.js";

/** What the CLI needs from its surroundings; main.ts passes the real process's. */
export type { ServiceAddresses };

export interface CliEnvironment {
  stdout: Output;
  stderr: Output;
  env: Record<string, string | undefined>;
  cwd: string;
  /** The repository root: where services/ and the Python venv are. */
  repoRoot: string;
  fetch?: typeof fetch;
  progress?: ProgressOptions;
  /** Resolves when a foreground `clipper up` should stop (Ctrl-C); defaults to SIGINT/SIGTERM. */
  untilStopRequested?: () => Promise<string>;
}

export interface OptionDef {
  type: "string" | "boolean";
  /** Shown after the flag in help, e.g. "N". */
  value?: string;
  help: string;
}

/** Flags as node:util parseArgs returns them, by name without the dashes. */
export type FlagValues = Record<string, string | boolean | undefined>;

export interface CommandDef {
  /** e.g. "model deploy". */
  name: string;
  summary: string;
  /** The arguments part of the synopsis. */
  synopsis: string;
  positionals: { required: string[]; optional?: string[] };
  options: Record<string, OptionDef>;
  examples: string[];
  run(inv: Invocation): Promise<number>;
}

export interface Invocation {
  command: CommandDef;
  values: FlagValues;
  positionals: string[];
  env: CliEnvironment;
  /** The cluster's name (clusters.ts): "default" unless --cluster or $CLIPPER_CLUSTER names another. */
  cluster: string;
  dataDir: string;
  addresses: ServiceAddresses;
  /** The system on Kubernetes, when --kubeconfig names one (kubernetes-system.ts); undefined: a system on this machine. */
  kubernetes: KubernetesSystem | undefined;
  management(): ManagementClient;
  containerManager(): ContainerManagerClient;
}

/** A command line that does not fit; reported with usage and exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    /** The command whose usage to print; undefined prints the overview. */
    readonly command?: CommandDef,
  ) {
    super(message);
  }
}

export const INPUT_TYPES = "bytes, ints, floats, doubles or strings";

export function positional(inv: Invocation, index: number): string {
  return inv.positionals[index] ?? "";
}

export function stringFlag(inv: Invocation, name: string): string | undefined {
  const v = inv.values[name];
  return typeof v === "string" ? v : undefined;
}

export function requiredString(inv: Invocation, name: string): string {
  const v = stringFlag(inv, name);
  if (v === undefined) throw new UsageError(`--${name} is required`, inv.command);
  return v;
}

/** A whole number in [min, max]; `fallback` when the flag is absent, which undefined makes required. */
export function intFlag(inv: Invocation, name: string, fallback: number | undefined, min: number, max: number): number {
  const raw = stringFlag(inv, name);
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`, inv.command);
    return fallback;
  }
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${raw}"`, inv.command);
  }
  return Number(raw);
}

export function onOffFlag(inv: Invocation, name: string): boolean | undefined {
  const raw = stringFlag(inv, name);
  if (raw === undefined) return undefined;
  if (raw === "on") return true;
  if (raw === "off") return false;
  throw new UsageError(`--${name} must be on or off, got "${raw}"`, inv.command);
}

export function inputTypeFlag(inv: Invocation, name: string): InputType {
  const raw = requiredString(inv, name);
  try {
    return parseInputType(raw);
  } catch {
    throw new UsageError(`--${name} "${raw}" is not an input type: use ${INPUT_TYPES}`, inv.command);
  }
}

/** Runs a check whose Error becomes a usage error of the command. */
export function wrapUsage<T>(command: CommandDef, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(err instanceof Error ? err.message : String(err), command);
  }
}
