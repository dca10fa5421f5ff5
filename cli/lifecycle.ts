/**
 * `clipper up`, `clipper down`, `clipper restart` and the services part of
 * `clipper status`. `up` starts the services (supervisor.ts), then leaves a
 * supervisor process (supervisor-main.ts) that restarts a service that exits;
 * `down` stops the supervisor first, then the services, then any model
 * replica a dead container-manager left.
 */
import { buildConsoleUi, buildServices } from "../services/build.js";
import { defaults } from "../services/shared/index.js";
import { CliError } from "./cli-error.js";
import {
  type ClusterPorts,
  DEFAULT_CLUSTER,
  DEFAULT_PORTS,
  listLocalClusters,
  pickClusterPorts,
  readClusterRecord,
  recordedAddress,
  writeClusterRecord,
} from "./clusters.js";
import { type Invocation, intFlag, stringFlag, UsageError } from "./invocation.js";
import { formatTable, indent, type Output } from "./output.js";
import { formatDuration, ServiceSupervisor } from "./service-supervisor.js";
import {
  connectHost,
  isRunning,
  launchOf,
  PortInUseError,
  planServices,
  processStartTicks,
  readServicesFile,
  removeServicesFile,
  type ServiceLaunch,
  type ServicesFile,
  StartError,
  startServices,
  stopServices,
  tryReadServicesFile,
  writeServicesFile,
} from "./supervisor.js";
import { requestRestart, serveControl, supervisorSocketPath } from "./supervisor-control.js";
import { runningSupervisor, startSupervisor, stopSupervisor, supervisorLog } from "./supervisor-launcher.js";

export interface UpInput {
  /** The cluster's name (clusters.ts), recorded in services.json; absent: the default cluster. */
  cluster?: string;
  dataDir: string;
  host: string;
  launches: ServiceLaunch[];
  healthTimeoutMs: number;
  /** Which `clipper up` flag sets each service's port, for the port-in-use hint. */
  portFlags: Record<string, string>;
  /**
   * Leave a supervisor process that restarts a service that exits (the
   * default). false: none (a foreground `clipper up` supervises in its own process).
   */
  supervise?: boolean;
}

/** Bound on each service's shutdown before SIGKILL. */
const STOP_GRACE_MS = 10_000;

/**
 * `clipper up` from its flags: plans the services, builds their bundles and
 * starts them, leaving a supervisor; with --foreground, this process is the
 * supervisor (it restarts a service that exits) until Ctrl-C, then stops them all.
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
  const named = inv.cluster !== DEFAULT_CLUSTER;
  const record = readClusterRecord(inv.dataDir);
  if (record !== undefined && record.name !== inv.cluster) {
    throw new CliError(
      `${inv.dataDir} is cluster "${record.name}"'s data directory, not "${inv.cluster}"'s: pass --cluster ${record.name}, or another --data-dir`,
    );
  }
  // A named cluster takes the ports it had, else free ones; a flag still wins. The default keeps 1337-1341.
  const base = named && !isUp(inv.dataDir) ? await pickClusterPorts(host, record?.ports) : (record?.ports ?? DEFAULT_PORTS);
  const gatewayPort = port("gateway-port", base.gateway);
  const ports: ClusterPorts = {
    gateway: gatewayPort,
    registry: port("registry-port", base.registry),
    router: port("router-port", base.router),
    containerManager: port("container-manager-port", base.containerManager),
    // Beside a gateway moved off its default port the console moves along (1337 -> 1341), so two systems on one machine do not collide.
    console: port("console-port", named ? base.console : defaults.consolePort + gatewayPort - defaults.gatewayPort),
  };
  let launches: ServiceLaunch[];
  try {
    launches = planServices({
      repoRoot: inv.env.repoRoot,
      dataDir: inv.dataDir,
      host,
      ports,
      store,
      ...(redisUrl === undefined ? {} : { redisUrl }),
      routerInProcess: routerMode === "in-process",
      ...(named ? { clusterName: inv.cluster } : {}),
    });
  } catch (err) {
    throw new UsageError((err as Error).message, inv.command);
  }
  // The services run from bundles (services/build.ts), built from the sources at hand; the console's page is
  // built when its sources changed since the last build.
  await Promise.all([buildServices(inv.env.repoRoot), buildConsoleUi(inv.env.repoRoot)]);
  const out = inv.env.stdout;
  const foreground = inv.values.foreground === true;
  const healthTimeoutMs = intFlag(inv, "timeout", 60, 1, 3600) * 1000;
  const file = await up(
    {
      cluster: inv.cluster,
      dataDir: inv.dataDir,
      host,
      launches,
      healthTimeoutMs,
      portFlags: {
        gateway: "--gateway-port",
        registry: "--registry-port",
        router: "--router-port",
        "container-manager": "--container-manager-port",
        console: "--console-port",
      },
      supervise: !foreground,
    },
    out,
  );
  // Recorded once the ports proved free, so the next `up` of this cluster takes the same ones.
  if (file !== undefined && named) writeClusterRecord(inv.dataDir, { version: 1, name: inv.cluster, ports });
  if (file === undefined || !foreground) return 0;
  out.write("running in the foreground (a service that exits is restarted); press Ctrl-C to stop\n");
  const supervisor = new ServiceSupervisor(file, { healthTimeoutMs, stopGraceMs: STOP_GRACE_MS, log: (line) => out.write(`${line}\n`) });
  const control = await serveControl(supervisorSocketPath(inv.dataDir), {
    restart: async (name, onProgress) => ({ pid: (await supervisor.restart(name, onProgress)).pid }),
  });
  const { lost } = supervisor.start({ pid: process.pid, startTicks: processStartTicks(process.pid), socket: control.socket, startedAtMs: Date.now() });
  const stop = (inv.env.untilStopRequested ?? untilSignal)().then((reason) => ({ reason, stopAll: true }));
  const outcome = await Promise.race([stop, lost.then((reason) => ({ reason, stopAll: false }))]);
  await supervisor.close();
  await control.close();
  if (!outcome.stopAll) {
    out.write(`${outcome.reason}; no longer supervising\n`);
    return 0;
  }
  out.write(`${outcome.reason}; stopping\n`);
  await stopRecordedServices(readServicesFile(inv.dataDir) ?? file, inv.dataDir, out);
  return 0;
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

/**
 * Starts the services unless they already run. Returns the started services,
 * or undefined when they were already running. Services that run without a
 * live supervisor get one (it restarts those that exited, when services.json
 * says how).
 */
export async function up(input: UpInput, out: Output): Promise<ServicesFile | undefined> {
  const existing = readServicesFile(input.dataDir);
  const recordedCluster = existing?.cluster ?? DEFAULT_CLUSTER;
  if (existing?.services.some(isRunning) && recordedCluster !== (input.cluster ?? DEFAULT_CLUSTER)) {
    throw new CliError(`cluster "${recordedCluster}" runs from ${input.dataDir}: pass --cluster ${recordedCluster}, or another --data-dir`);
  }
  if (existing !== undefined) {
    const running = existing.services.filter(isRunning);
    const exited = existing.services.filter((s) => !isRunning(s));
    const supervised = runningSupervisor(existing) !== undefined;
    const healable = input.supervise !== false && exited.every((s) => launchOf(s) !== undefined);
    if (running.length > 0 && (exited.length === 0 || supervised || healable)) {
      out.write(`clipper is already running (${clusterWords(input.cluster)}data dir ${input.dataDir})\n`);
      const names = exited.map((s) => s.name).join(", ");
      if (exited.length > 0 && supervised) out.write(`  ${names} exited; the supervisor is restarting it (\`clipper status\` shows when)\n`);
      if (!supervised && input.supervise !== false) {
        const record = await startSupervisor(input.dataDir, input.healthTimeoutMs);
        out.write(`  its supervisor had exited: started a new one (pid ${record.pid})${exited.length > 0 ? `, which restarts ${names}` : ""}\n`);
      }
      printEndpoints(existing, out);
      return undefined;
    }
    if (running.length > 0) {
      const names = running.map((s) => s.name).join(", ");
      throw new CliError(`some services from an earlier \`clipper up\` still run (${names}) but others exited; run \`clipper down\` first`);
    }
    // Nothing recorded still runs: a stale file from a crash or reboot.
    await stopSupervisor(existing);
    removeServicesFile(input.dataDir);
  }
  let file: ServicesFile;
  try {
    file = await startServices(input.launches, {
      ...(input.cluster === undefined ? {} : { cluster: input.cluster }),
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
  out.write(`clipper is up (${clusterWords(input.cluster)}data dir ${input.dataDir}, logs in ${input.dataDir}/logs)\n`);
  printEndpoints(file, out);
  if (input.supervise === false) return file;
  try {
    const record = await startSupervisor(input.dataDir, input.healthTimeoutMs);
    out.write(`  a service that exits is restarted by the supervisor (pid ${record.pid}, log ${supervisorLog(input.dataDir)})\n`);
  } catch (err) {
    out.write(`warning: ${(err as Error).message}\na service that exits will stay down; \`clipper up\` again starts a supervisor\n`);
  }
  return readServicesFile(input.dataDir) ?? file;
}

/** `cluster "a", ` before a named cluster's data dir in messages; nothing for the default one, whose messages stay as they were. */
function clusterWords(cluster: string | undefined): string {
  return cluster === undefined || cluster === DEFAULT_CLUSTER ? "" : `cluster "${cluster}", `;
}

/** Whether services recorded in the data dir run (then `up` reports them instead of starting any). */
function isUp(dataDir: string): boolean {
  return tryReadServicesFile(dataDir)?.services.some(isRunning) ?? false;
}

function printEndpoints(file: ServicesFile, out: Output): void {
  const gateway = file.services.find((s) => s.name === "gateway");
  if (gateway === undefined) return;
  const address = `${connectHost(gateway.host)}:${gateway.port}`;
  out.write(`  REST:  POST http://${address}/<application>/predict  {"input": [...]}\n`);
  out.write(`  gRPC:  ${address}  (clipper.v1.PredictionService)\n`);
  const page = file.services.find((s) => s.name === "console");
  if (page !== undefined) out.write(`  console: http://${connectHost(page.host)}:${page.port}/  (the operator's page: docs/console.md)\n`);
}

/**
 * Stops what `clipper up` started, whatever died first: the supervisor (so
 * that nothing is restarted meanwhile), the services, then the model replicas
 * a container-manager that died left running. Says so when nothing runs.
 */
export async function down(dataDir: string, out: Output): Promise<void> {
  const file = readServicesFile(dataDir);
  if (file === undefined) {
    out.write(`clipper is not running (no ${dataDir}/run/services.json)\n`);
    await stopLeftoverReplicaProcesses(dataDir, out);
    return;
  }
  await stopSupervisor(file);
  // It may have started a service again, recording the new pid, before it went.
  const current = readServicesFile(dataDir);
  if (current === undefined) {
    // A foreground `clipper up` stops everything itself when told to.
    out.write("clipper is down\n");
    return;
  }
  await stopRecordedServices(current, dataDir, out);
}

async function stopRecordedServices(file: ServicesFile, dataDir: string, out: Output): Promise<void> {
  await stopServices(file, { graceMs: STOP_GRACE_MS, onProgress: (line) => out.write(`${line}\n`) });
  await stopLeftoverReplicaProcesses(dataDir, out);
  removeServicesFile(dataDir);
  out.write("clipper is down\n");
}

/**
 * Replicas run in process groups of their own and outlive a container-manager
 * that was killed (run/replica-processes.json names them); one stopped
 * gracefully stops its replicas and leaves none.
 */
async function stopLeftoverReplicaProcesses(dataDir: string, out: Output): Promise<void> {
  const { stopLeftoverReplicas } = await import("../services/container-manager/index.js");
  const pids = await stopLeftoverReplicas(dataDir, 5000);
  if (pids.length === 0) return;
  const what = pids.length === 1 ? "model replica process" : "model replica processes";
  out.write(`stopped ${pids.length} ${what} a container-manager had left running (pid ${pids.join(", ")})\n`);
}

/**
 * `clipper restart SERVICE`: stops one service and starts it again, the
 * others untouched (the container-manager hands its replicas to its successor).
 * Asks the supervisor when one runs, else does it here.
 */
export async function restartService(dataDir: string, name: string, out: Output): Promise<void> {
  const file = readServicesFile(dataDir);
  if (file === undefined) throw new CliError(`clipper is not running (no ${dataDir}/run/services.json)`);
  if (!file.services.some((s) => s.name === name)) {
    throw new CliError(`no service "${name}" was started by \`clipper up\` here; the services are ${file.services.map((s) => s.name).join(", ")}`);
  }
  const progress = (line: string) => out.write(`${line}\n`);
  const supervisor = runningSupervisor(file);
  let pid: number;
  try {
    if (supervisor !== undefined) {
      pid = (await requestRestart(supervisor.socket, name, progress, STOP_GRACE_MS + 120_000)).pid;
    } else {
      progress("(no supervisor runs: restarting it from here; `clipper up` starts a supervisor)");
      pid = (await new ServiceSupervisor(file, { stopGraceMs: STOP_GRACE_MS }).restart(name, progress)).pid;
    }
  } catch (err) {
    throw new CliError(`restarting ${name} failed: ${(err as Error).message}`);
  }
  out.write(`${name} restarted (pid ${pid})\n`);
}

/** Prints each recorded service as up or down; returns whether any runs. */
export function servicesStatus(dataDir: string, out: Output, cluster?: string): boolean {
  const file = readServicesFile(dataDir);
  out.write(`services (${clusterWords(cluster)}data dir ${dataDir}):\n`);
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
    String(s.restarts ?? 0),
  ]);
  out.write(indent(formatTable(["SERVICE", "STATE", "PID", "ADDRESS", "METRICS", "RESTARTS"], rows)));
  const now = Date.now();
  for (const s of file.services) {
    if (s.lastExit === undefined) continue;
    const when = s.lastExitAtMs === undefined ? "" : ` ${formatDuration(now - s.lastExitAtMs)} ago`;
    const next = !isRunning(s) && s.nextStartAtMs !== undefined ? `; starting again in ${formatDuration(Math.max(0, s.nextStartAtMs - now))}` : "";
    out.write(`  ${s.name}: last exit${when}: ${s.lastExit}${next} (log ${s.log})\n`);
  }
  const supervisor = runningSupervisor(file);
  out.write(
    supervisor !== undefined
      ? `  supervisor: up (pid ${supervisor.pid}): a service that exits is restarted with backoff; \`clipper restart SERVICE\` restarts one now\n`
      : "  supervisor: down: a service that exits stays down; `clipper up` starts a supervisor again\n",
  );
  return file.services.some(isRunning);
}

/** `clipper clusters`: each local system, its state and where its services listen. */
export function clustersList(env: Record<string, string | undefined>, cwd: string, out: Output): void {
  const clusters = listLocalClusters(env, cwd);
  if (clusters.length === 0) {
    out.write("no Clipper system on this machine yet: `clipper up` starts the default one, `clipper up --cluster NAME` a named one\n");
    return;
  }
  const rows = clusters.map((c) => {
    const at = (service: string) => recordedAddress(c.state === "stopped" ? undefined : c.services, service);
    return [c.name, c.state, at("gateway"), at("registry"), at("container-manager"), at("console"), c.dataDir];
  });
  out.write(formatTable(["CLUSTER", "STATE", "GATEWAY", "REGISTRY", "CONTAINER-MANAGER", "CONSOLE", "DATA DIR"], rows));
}
