/** `clipper up`, `clipper down` and the services part of `clipper status`, over the supervisor. */
import { CliError } from "./cli-error.js";
import { formatTable, indent, type Output } from "./output.js";
import {
  connectHost,
  isRunning,
  PortInUseError,
  readServicesFile,
  removeServicesFile,
  type ServiceLaunch,
  type ServicesFile,
  StartError,
  startServices,
  stopServices,
  writeServicesFile,
} from "./supervisor.js";

export interface UpInput {
  dataDir: string;
  host: string;
  launches: ServiceLaunch[];
  healthTimeoutMs: number;
  /** Which `clipper up` flag sets each service's port, for the port-in-use hint. */
  portFlags: Record<string, string>;
}

/** Bound on each service's shutdown before SIGKILL. */
export const STOP_GRACE_MS = 10_000;

/**
 * Starts the services unless they already run. Returns the started services,
 * or undefined when they were already running.
 */
export async function up(input: UpInput, out: Output): Promise<ServicesFile | undefined> {
  const existing = readServicesFile(input.dataDir);
  if (existing !== undefined) {
    const running = existing.services.filter(isRunning);
    if (running.length === existing.services.length && running.length > 0) {
      out.write(`clipper is already running (data dir ${input.dataDir})\n`);
      printEndpoints(existing, out);
      return undefined;
    }
    if (running.length > 0) {
      const names = running.map((s) => s.name).join(", ");
      throw new CliError(`some services from an earlier \`clipper up\` still run (${names}) but others exited; run \`clipper down\` first`);
    }
    // Nothing recorded still runs: a stale file from a crash or reboot.
    removeServicesFile(input.dataDir);
  }
  let file: ServicesFile;
  try {
    file = await startServices(input.launches, {
      dataDir: input.dataDir,
      host: input.host,
      healthTimeoutMs: input.healthTimeoutMs,
      onProgress: (line) => out.write(`${line}\n`),
    });
  } catch (err) {
    if (err instanceof PortInUseError) {
      const flag = input.portFlags[err.service];
      const hint = err.what === "port" && flag !== undefined ? `; stop it or pick another port with ${flag}` : "";
      throw new CliError(`${err.message}${hint}`);
    }
    if (err instanceof StartError) {
      const tail = err.logTail.length === 0 ? "  (the log is empty)" : err.logTail.map((l) => `  ${l}`).join("\n");
      throw new CliError(`${err.message}\nlast lines of ${err.log}:\n${tail}\nthe services started before it were stopped`);
    }
    throw err;
  }
  writeServicesFile(file);
  out.write(`clipper is up (data dir ${input.dataDir}, logs in ${input.dataDir}/logs)\n`);
  printEndpoints(file, out);
  return file;
}

function printEndpoints(file: ServicesFile, out: Output): void {
  const gateway = file.services.find((s) => s.name === "gateway");
  if (gateway === undefined) return;
  const address = `${connectHost(gateway.host)}:${gateway.port}`;
  out.write(`  REST:  POST http://${address}/<application>/predict  {"input": [...]}\n`);
  out.write(`  gRPC:  ${address}  (clipper.v1.PredictionService)\n`);
}

/** Stops what `clipper up` started; says so when nothing runs. */
export async function down(dataDir: string, out: Output): Promise<void> {
  const file = readServicesFile(dataDir);
  if (file === undefined) {
    out.write(`clipper is not running (no ${dataDir}/run/services.json)\n`);
    return;
  }
  await stopServices(file, { graceMs: STOP_GRACE_MS, onProgress: (line) => out.write(`${line}\n`) });
  removeServicesFile(dataDir);
  out.write("clipper is down\n");
}

/** Prints each recorded service as up or down; returns whether any runs. */
export function servicesStatus(dataDir: string, out: Output): boolean {
  const file = readServicesFile(dataDir);
  out.write(`services (data dir ${dataDir}):\n`);
  if (file === undefined) {
    out.write("  not started by `clipper up`\n");
    return false;
  }
  const rows = file.services.map((s) => [
    s.name,
    isRunning(s) ? "up" : "down",
    String(s.pid),
    `${connectHost(s.host)}:${s.port}`,
    s.metricsPort === null ? `${s.port}` : String(s.metricsPort),
  ]);
  out.write(indent(formatTable(["SERVICE", "STATE", "PID", "ADDRESS", "METRICS"], rows)));
  return file.services.some(isRunning);
}
