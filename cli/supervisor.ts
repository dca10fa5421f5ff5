/**
 * Starts, watches and stops Clipper's services as detached processes on one
 * machine, recording them in <data-dir>/run/services.json so that a later
 * `clipper down` or `clipper status` finds them (and the supervisor that
 * `clipper up` leaves, service-supervisor.ts, restarts them from the record).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { serviceNodeArgs } from "../services/build.js";
import { createProbe, type HealthProbe } from "./health-probe.js";

/** Start order; they stop in the reverse order (console first, registry last). */
export const SERVICE_NAMES = ["registry", "container-manager", "router", "gateway", "console"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export type { HealthProbe } from "./health-probe.js";

/** How to start one service. */
export interface ServiceLaunch {
  name: string;
  /** argv[0] is the executable. */
  argv: string[];
  cwd: string;
  /** Added to the CLI's own environment. */
  env: Record<string, string>;
  port: number;
  /** Null when metrics are served on the service's own port. */
  metricsPort: number | null;
  health: HealthProbe;
  /**
   * The signal a restart stops it with, when not SIGTERM: the container-
   * manager's SIGUSR2 leaves its replicas running for its successor to adopt.
   */
  restartSignal?: NodeJS.Signals;
}

/** A started service as recorded in services.json. */
export interface RecordedService {
  name: string;
  pid: number;
  /** Kernel start time of the pid (Linux), so a reused pid is not mistaken for the service. */
  startTicks: string | null;
  host: string;
  port: number;
  metricsPort: number | null;
  argv: string[];
  log: string;
  startedAtMs: number;
  /** How to start it again; absent in files written before services were restarted. */
  cwd?: string;
  env?: Record<string, string>;
  health?: HealthProbe;
  restartSignal?: NodeJS.Signals;
  /** Starts after the first (crashes restarted by the supervisor and `clipper restart`). */
  restarts?: number;
  /** Why the previous process ended, and when. */
  lastExit?: string;
  lastExitAtMs?: number;
  /** When the supervisor starts it again (it is waiting out its backoff). */
  nextStartAtMs?: number;
}

/** The process that restarts crashed services (service-supervisor.ts), as it records itself. */
export interface SupervisorRecord {
  pid: number;
  startTicks: string | null;
  /** Unix socket where it takes restart requests. */
  socket: string;
  startedAtMs: number;
}

export interface ServicesFile {
  version: 1;
  /** The cluster's name (clusters.ts); absent in files written before clusters had names, which were the default one. */
  cluster?: string;
  dataDir: string;
  host: string;
  services: RecordedService[];
  supervisor?: SupervisorRecord;
}

export interface PlanOptions {
  repoRoot: string;
  dataDir: string;
  host: string;
  /** console: the operator's console's port; absent, no console is started. */
  ports: { gateway: number; registry: number; router: number; containerManager: number; console?: number };
  store: "embedded" | "redis";
  redisUrl?: string;
  /** The router inside the gateway's process (`--router in-process` on the gateway) instead of a service of its own. */
  routerInProcess?: boolean;
  /** The node executable; defaults to the one running the CLI. */
  node?: string;
  /** A named cluster's name, given to the container-manager (--cluster-name) to name and label what it creates; absent: its own default. */
  clusterName?: string;
}

/** Metrics ports follow the service ports (1338 -> 9338), so overriding a port moves its metrics too. */
export const METRICS_PORT_OFFSET = 8000;

/**
 * The launch of each real service, in start order, with exactly the flags its
 * main.ts defines (docs/architecture.md). The data dir also goes in
 * CLIPPER_DATA_DIR, which every service reads, so services without a
 * --data-dir flag still agree on it.
 */
export function planServices(options: PlanOptions): ServiceLaunch[] {
  const node = options.node ?? process.execPath;
  const connect = connectHost(options.host);
  const registry = `${connect}:${options.ports.registry}`;
  const router = `${connect}:${options.ports.router}`;
  const launch = (name: ServiceName, port: number, metrics: boolean, flags: string[], health: HealthProbe): ServiceLaunch => {
    const metricsPort = metrics ? port + METRICS_PORT_OFFSET : null;
    if (metricsPort !== null && metricsPort > 65535) {
      throw new Error(`${name}: port ${port} leaves no room for its metrics port (port + ${METRICS_PORT_OFFSET} > 65535)`);
    }
    return {
      name,
      argv: [
        node,
        ...serviceNodeArgs(options.repoRoot, name),
        "--host",
        options.host,
        "--port",
        String(port),
        ...(metricsPort === null ? [] : ["--metrics-port", String(metricsPort)]),
        ...flags,
      ],
      cwd: options.repoRoot,
      env: { CLIPPER_DATA_DIR: options.dataDir },
      port,
      metricsPort,
      health,
    };
  };
  const grpcProbe: HealthProbe = { kind: "grpc" };
  const storeFlags = ["--store", options.store, ...(options.redisUrl === undefined ? [] : ["--redis-url", options.redisUrl])];
  return [
    launch("registry", options.ports.registry, true, ["--data-dir", options.dataDir, ...storeFlags], grpcProbe),
    {
      ...launch(
        "container-manager",
        options.ports.containerManager,
        true,
        ["--registry", registry, "--data-dir", options.dataDir, ...(options.clusterName === undefined ? [] : ["--cluster-name", options.clusterName])],
        grpcProbe,
      ),
      restartSignal: "SIGUSR2",
    },
    ...(options.routerInProcess ? [] : [launch("router", options.ports.router, true, ["--registry", registry], grpcProbe)]),
    launch("gateway", options.ports.gateway, false, ["--registry", registry, "--router", options.routerInProcess ? "in-process" : router], {
      kind: "http",
      path: "/healthz",
    }),
    // The console scrapes every service's /metrics (the router's are on the gateway's when it runs inside it).
    ...(options.ports.console === undefined
      ? []
      : [
          launch(
            "console",
            options.ports.console,
            false,
            ["--registry", registry, "--container-manager", `${connect}:${options.ports.containerManager}`, "--metrics-targets", consoleTargets(options)],
            {
              kind: "http",
              path: "/healthz",
            },
          ),
        ]),
  ];
}

function consoleTargets(options: PlanOptions): string {
  const connect = connectHost(options.host);
  const metrics = (port: number) => `http://${connect}:${port}/metrics`;
  const targets = [
    `gateway=${metrics(options.ports.gateway)}`,
    `registry=${metrics(options.ports.registry + METRICS_PORT_OFFSET)}`,
    `container-manager=${metrics(options.ports.containerManager + METRICS_PORT_OFFSET)}`,
    ...(options.routerInProcess ? [] : [`router=${metrics(options.ports.router + METRICS_PORT_OFFSET)}`]),
  ];
  return targets.join(",");
}

/** The address clients use for a service bound on `host` (a wildcard bind is reached on loopback). */
export function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

export function servicesFilePath(dataDir: string): string {
  return path.join(dataDir, "run", "services.json");
}

export function readServicesFile(dataDir: string): ServicesFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(servicesFilePath(dataDir), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const parsed = JSON.parse(text) as Partial<ServicesFile>;
  if (parsed.version !== 1 || !Array.isArray(parsed.services)) {
    throw new Error(`${servicesFilePath(dataDir)} is not a services file this CLI understands; remove it if no services run`);
  }
  return parsed as ServicesFile;
}

/** The services file, or undefined when there is none or it cannot be read (as good as none for finding addresses). */
export function tryReadServicesFile(dataDir: string): ServicesFile | undefined {
  try {
    return readServicesFile(dataDir);
  } catch {
    return undefined;
  }
}

export function writeServicesFile(file: ServicesFile): void {
  const target = servicesFilePath(file.dataDir);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  // Write then rename, so a reader never sees half a file.
  const temp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify(file, null, 2)}\n`);
  fs.renameSync(temp, target);
}

export function removeServicesFile(dataDir: string): void {
  fs.rmSync(servicesFilePath(dataDir), { force: true });
}

/** Whether the recorded process still runs (and is the same process, where the kernel tells). */
export function isRunning(service: Pick<RecordedService, "pid" | "startTicks">): boolean {
  try {
    process.kill(service.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = procStat(service.pid);
  if (stat === undefined) return true;
  if (stat.state === "Z") return false;
  return service.startTicks === null || stat.startTicks === service.startTicks;
}

/** The kernel's start time of a pid (Linux), null where /proc does not tell. */
export function processStartTicks(pid: number): string | null {
  return procStat(pid)?.startTicks ?? null;
}

/** State and start time from /proc/<pid>/stat; undefined where /proc is unavailable. */
function procStat(pid: number): { state: string; startTicks: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses; fields after the last ')' are plain.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const startTicks = fields[19];
  return state === undefined || startTicks === undefined ? undefined : { state, startTicks };
}

export class PortInUseError extends Error {
  override name = "PortInUseError";
  constructor(
    readonly service: string,
    readonly host: string,
    readonly port: number,
    readonly what: "port" | "metrics port",
  ) {
    super(`${service}: ${what} ${port} on ${host} is already in use by another process`);
  }
}

/** A service that did not become healthy; everything started before it has been stopped. */
export class StartError extends Error {
  override name = "StartError";
  constructor(
    readonly service: string,
    readonly reason: string,
    readonly log: string,
    readonly logTail: string[],
  ) {
    super(`${service} failed to start: ${reason}`);
  }
}

/** Resolves true when nothing listens on host:port (we could bind it ourselves). */
export function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE" || err.code === "EACCES") resolve(false);
      else reject(err);
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export interface StartOptions {
  dataDir: string;
  /** Recorded in services.json: which cluster these services are. */
  cluster?: string;
  /** The host the services bind. */
  host: string;
  /** How long each service has to become healthy. */
  healthTimeoutMs: number;
  /** Progress lines for the user. */
  onProgress?: (line: string) => void;
  /** Lines of a failed service's log to include in the StartError. */
  logTailLines?: number;
}

/**
 * Starts the services one after another, each once the previous is healthy.
 * On any failure, stops what was started, removes services.json and throws
 * (PortInUseError before anything starts, StartError after).
 */
export async function startServices(launches: ServiceLaunch[], options: StartOptions): Promise<ServicesFile> {
  const host = connectHost(options.host);
  for (const launch of launches) {
    const bindHost = options.host;
    if (!(await isPortFree(bindHost, launch.port))) throw new PortInUseError(launch.name, bindHost, launch.port, "port");
    if (launch.metricsPort !== null && !(await isPortFree(bindHost, launch.metricsPort))) {
      throw new PortInUseError(launch.name, bindHost, launch.metricsPort, "metrics port");
    }
  }
  const logDir = path.join(options.dataDir, "logs");
  fs.mkdirSync(logDir, { recursive: true });
  const file: ServicesFile = {
    version: 1,
    ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
    dataDir: options.dataDir,
    host: options.host,
    services: [],
  };
  for (const launch of launches) {
    const log = path.join(logDir, `${launch.name}.log`);
    const started = launchService(launch, log);
    if (started.pid !== undefined) {
      file.services.push({
        name: launch.name,
        pid: started.pid,
        startTicks: procStat(started.pid)?.startTicks ?? null,
        host: options.host,
        port: launch.port,
        metricsPort: launch.metricsPort,
        argv: launch.argv,
        log,
        startedAtMs: Date.now(),
        cwd: launch.cwd,
        env: launch.env,
        health: launch.health,
        ...(launch.restartSignal === undefined ? {} : { restartSignal: launch.restartSignal }),
        restarts: 0,
      });
      // Recorded before waiting, so `clipper down` can clean up if this CLI dies meanwhile.
      writeServicesFile(file);
    }
    options.onProgress?.(`starting ${launch.name} on ${host}:${launch.port} (log ${log})`);
    const failure = await waitHealthy(launch, host, options.healthTimeoutMs, started.exited);
    if (failure !== undefined) {
      const logTail = tailLines(log, options.logTailLines ?? 20);
      await stopServices(file, { graceMs: 5000 });
      removeServicesFile(options.dataDir);
      throw new StartError(launch.name, failure, log, logTail);
    }
    options.onProgress?.(`${launch.name} is healthy`);
  }
  return file;
}

export interface Spawned {
  pid: number | undefined;
  /** Resolves with a description once the process has exited or failed to spawn. */
  exited: Promise<string>;
}

/** How to start a recorded service again; undefined for a record from before services were restarted. */
export function launchOf(service: RecordedService): ServiceLaunch | undefined {
  if (service.cwd === undefined || service.health === undefined || service.argv.length === 0) return undefined;
  return {
    name: service.name,
    argv: service.argv,
    cwd: service.cwd,
    env: service.env ?? {},
    port: service.port,
    metricsPort: service.metricsPort,
    health: service.health,
    ...(service.restartSignal === undefined ? {} : { restartSignal: service.restartSignal }),
  };
}

/**
 * Starts a service detached (its own session and process group), its output
 * appended to `log`; the caller records the pid and waits for it to be healthy.
 */
export function launchService(launch: ServiceLaunch, log: string): Spawned {
  const fd = fs.openSync(log, "a");
  try {
    fs.writeSync(fd, `--- ${new Date().toISOString()} starting: ${launch.argv.join(" ")}\n`);
    const [command, ...args] = launch.argv;
    if (command === undefined) throw new Error(`${launch.name}: empty argv`);
    // Its own session and process group: the terminal's Ctrl-C does not reach it, and `down` can kill the group.
    const child = spawn(command, args, {
      cwd: launch.cwd,
      env: { ...process.env, ...launch.env },
      detached: true,
      stdio: ["ignore", fd, fd],
    });
    const exited = new Promise<string>((resolve) => {
      child.once("error", (err) => resolve(`could not run ${command}: ${err.message}`));
      child.once("exit", (code, signal) => resolve(signal === null ? `exited with code ${code}` : `killed by ${signal}`));
    });
    child.unref();
    return { pid: child.pid, exited };
  } finally {
    fs.closeSync(fd);
  }
}

/** Undefined once healthy; otherwise why not ("aborted" when `signal` ends the wait). */
export async function waitHealthy(
  launch: ServiceLaunch,
  host: string,
  timeoutMs: number,
  exited: Promise<string>,
  signal?: AbortSignal,
): Promise<string | undefined> {
  let exitReason: string | undefined;
  void exited.then((reason) => {
    exitReason = reason;
  });
  const deadline = Date.now() + timeoutMs;
  const probe = createProbe(launch.health, `${host}:${launch.port}`);
  const aborted = new Promise<void>((resolve) => signal?.addEventListener("abort", () => resolve(), { once: true }));
  try {
    while (Date.now() < deadline) {
      if (signal?.aborted) return "aborted";
      if (exitReason !== undefined) return exitReason;
      if (await probe.check()) return undefined;
      await Promise.race([sleep(200), exited, aborted]);
    }
    return exitReason ?? `not healthy after ${Math.round(timeoutMs / 1000)} s`;
  } finally {
    probe.close();
  }
}

export interface StopOptions {
  /** How long each service has between SIGTERM and SIGKILL. */
  graceMs: number;
  onProgress?: (line: string) => void;
}

/**
 * Stops the services in reverse start order: SIGTERM, wait up to graceMs,
 * then SIGKILL to the whole process group so nothing it started stays.
 */
export async function stopServices(file: ServicesFile, options: StopOptions): Promise<void> {
  for (const service of [...file.services].reverse()) await stopService(service, options);
}

/**
 * Stops one service: `signal` (SIGTERM unless told), wait up to graceMs, then
 * SIGKILL to its whole process group. A service already gone has its group
 * killed (children it left), if the pid is not someone else's now.
 */
export async function stopService(service: RecordedService, options: StopOptions & { signal?: NodeJS.Signals }): Promise<void> {
  if (!isRunning(service)) {
    // Its children may outlive it in its group. While pid P is gone no other process can lead a group P,
    // so the group is still ours; a reused pid, though, may lead someone else's group.
    if (!pidExists(service.pid)) killGroup(service.pid);
    return;
  }
  options.onProgress?.(`stopping ${service.name} (pid ${service.pid})`);
  signal(service.pid, options.signal ?? "SIGTERM");
  const deadline = Date.now() + options.graceMs;
  while (isRunning(service) && Date.now() < deadline) await sleep(50);
  const forced = isRunning(service);
  if (forced) options.onProgress?.(`${service.name} did not stop within ${options.graceMs / 1000} s; killing it`);
  killGroup(service.pid);
  // SIGKILL cannot be ignored; this wait only lets the kernel and the process's parent (the supervisor)
  // catch up: a dead service stays a zombie until reaped, and `down` returns once it is gone.
  const killDeadline = Date.now() + 2000;
  while (isPresent(service) && Date.now() < killDeadline) await sleep(20);
}

/** Whether the service's process still exists, as a zombie too (the same process: its start time matches). */
function isPresent(service: Pick<RecordedService, "pid" | "startTicks">): boolean {
  if (!pidExists(service.pid)) return false;
  const stat = procStat(service.pid);
  return stat === undefined || service.startTicks === null || stat.startTicks === service.startTicks;
}

export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** The service leads its own process group (detached spawn), so -pid reaches it and its children. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ESRCH" && code !== "EPERM") throw err;
  }
}

/** The last `count` lines of a file (reads at most its last 64 KiB). */
export function tailLines(file: string, count: number): string[] {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return [];
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, 64 * 1024);
    const buffer = Buffer.alloc(length);
    fs.readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString("utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    return lines.slice(-count);
  } finally {
    fs.closeSync(fd);
  }
}
