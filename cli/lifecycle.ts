/** `clipper up`, `clipper down` and the services part of `clipper status`, over the supervisor. */
import { setTimeout as sleep } from "node:timers/promises";
import { buildServices } from "../services/build.js";
import { defaults } from "../services/shared/index.js";
import { CliError } from "./cli-error.js";
import { type Invocation, intFlag, stringFlag, UsageError } from "./invocation.js";
import { formatTable, indent, type Output } from "./output.js";
import {
  connectHost,
  isRunning,
  PortInUseError,
  planServices,
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
const STOP_GRACE_MS = 10_000;

/**
 * `clipper up` from its flags: plans the services, builds their bundles and
 * starts them; with --foreground, waits for Ctrl-C or a service's exit, then
 * stops them all (exit status 1 when a service exited on its own).
 */
export async function runUp(inv: Invocation): Promise<number> {
  const port = (flag: string, fallback: number) => intFlag(inv, flag, fallback, 1, 65535);
  const store = stringFlag(inv, "store") ?? "embedded";
  if (store !== "embedded" && store !== "redis") throw new UsageError(`--store must be embedded or redis, got "${store}"`, inv.command);
  const redisUrl = stringFlag(inv, "redis-url");
  if (store === "redis" && redisUrl === undefined) throw new UsageError("--store redis needs --redis-url", inv.command);
  const host = stringFlag(inv, "host") ?? "127.0.0.1";
  const routerMode = stringFlag(inv, "router") ?? "in-process";
  if (routerMode !== "service" && routerMode !== "in-process") throw new UsageError(`--router must be service or in-process, got "${routerMode}"`, inv.command);
  let launches: ServiceLaunch[];
  try {
    launches = planServices({
      repoRoot: inv.env.repoRoot,
      dataDir: inv.dataDir,
      host,
      ports: {
        gateway: port("gateway-port", defaults.gatewayPort),
        registry: port("registry-port", defaults.registryPort),
        router: port("router-port", defaults.routerPort),
        containerManager: port("container-manager-port", defaults.containerManagerPort),
      },
      store,
      ...(redisUrl === undefined ? {} : { redisUrl }),
      routerInProcess: routerMode === "in-process",
    });
  } catch (err) {
    throw new UsageError((err as Error).message, inv.command);
  }
  // The services run from bundles (services/build.ts), built from the sources at hand.
  await buildServices(inv.env.repoRoot);
  const out = inv.env.stdout;
  const file = await up(
    {
      dataDir: inv.dataDir,
      host,
      launches,
      healthTimeoutMs: intFlag(inv, "timeout", 60, 1, 3600) * 1000,
      portFlags: { gateway: "--gateway-port", registry: "--registry-port", router: "--router-port", "container-manager": "--container-manager-port" },
    },
    out,
  );
  if (file === undefined || inv.values.foreground !== true) return 0;
  out.write("running in the foreground; press Ctrl-C to stop\n");
  const watching = new AbortController();
  const reason = await Promise.race([(inv.env.untilStopRequested ?? untilSignal)(), untilAnyExits(file, watching.signal)]);
  watching.abort();
  out.write(`${reason}; stopping\n`);
  await stopRecordedServices(file, inv.dataDir, out);
  return reason.startsWith("received") ? 0 : 1;
}

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
      resolve(`received ${signal}`);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}

/** Polls the services until one exits; the pending poll keeps a foreground CLI alive. */
async function untilAnyExits(file: ServicesFile, signal: AbortSignal): Promise<string> {
  while (!signal.aborted) {
    const gone = file.services.find((s) => !isRunning(s));
    if (gone !== undefined) return `${gone.name} exited (see ${gone.log})`;
    await sleep(500, undefined, { signal }).catch(() => undefined);
  }
  return "stopped watching";
}

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
  await stopRecordedServices(file, dataDir, out);
}

async function stopRecordedServices(file: ServicesFile, dataDir: string, out: Output): Promise<void> {
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
