/**
 * Several Clipper systems on one machine, each a cluster with a name (Clipper's
 * `cluster_name`). The default cluster keeps the data directory and ports it
 * always had (~/.clipper/data, 1337-1341); a named one lives in
 * <clipper home>/clusters/NAME and gets free ports picked at its first
 * `clipper up`, recorded in its cluster.json and taken again by later ones
 * while they are free. `--cluster NAME` (or $CLIPPER_CLUSTER) finds it again.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { defaults } from "../services/shared/index.js";
import { connectHost, isPortFree, isRunning, METRICS_PORT_OFFSET, readServicesFile, type ServicesFile } from "./supervisor.js";

export const DEFAULT_CLUSTER = "default";

/** A DNS label (RFC 1123), as Kubernetes object names and label values allow: the name goes into both. */
const CLUSTER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The name, or an Error saying what a cluster name may be. */
export function validateClusterName(name: string): string {
  if (!CLUSTER_NAME.test(name)) {
    throw new Error(
      `cluster name "${name}" is not valid: use 1 to 63 lowercase letters, digits and "-", starting and ending with a letter or digit (a DNS label)`,
    );
  }
  return name;
}

/** Where Clipper keeps its state on this machine: $CLIPPER_HOME, else ~/.clipper. */
export function clipperHome(env: Record<string, string | undefined>, cwd: string): string {
  return path.resolve(cwd, env.CLIPPER_HOME || path.join(os.homedir(), ".clipper"));
}

/** The default cluster's data directory: $CLIPPER_DATA_DIR, else <home>/data. */
export function defaultDataDir(env: Record<string, string | undefined>, cwd: string): string {
  return path.resolve(cwd, env.CLIPPER_DATA_DIR || path.join(clipperHome(env, cwd), "data"));
}

/** A named cluster's data directory. */
export function clusterDataDir(home: string, name: string): string {
  return path.join(home, "clusters", name);
}

/** The ports of one system; metrics follow the registry's, router's and container-manager's at + METRICS_PORT_OFFSET. */
export interface ClusterPorts {
  gateway: number;
  registry: number;
  router: number;
  containerManager: number;
  console: number;
}

export const DEFAULT_PORTS: ClusterPorts = {
  gateway: defaults.gatewayPort,
  registry: defaults.registryPort,
  router: defaults.routerPort,
  containerManager: defaults.containerManagerPort,
  console: defaults.consolePort,
};

/** What a named cluster's data directory says about it (cluster.json), kept across `down`. */
export interface ClusterRecord {
  version: 1;
  name: string;
  ports: ClusterPorts;
}

export function clusterRecordPath(dataDir: string): string {
  return path.join(dataDir, "cluster.json");
}

/** The record, or undefined when there is none or it is not one this CLI wrote. */
export function readClusterRecord(dataDir: string): ClusterRecord | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(clusterRecordPath(dataDir), "utf8")) as Partial<ClusterRecord>;
    const ports = parsed.ports;
    if (parsed.version !== 1 || typeof parsed.name !== "string" || ports === undefined) return undefined;
    const valid = Object.keys(DEFAULT_PORTS).every((k) => Number.isInteger(ports[k as keyof ClusterPorts]));
    return valid ? (parsed as ClusterRecord) : undefined;
  } catch {
    return undefined;
  }
}

export function writeClusterRecord(dataDir: string, record: ClusterRecord): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const target = clusterRecordPath(dataDir);
  const temp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`);
  fs.renameSync(temp, target);
}

/**
 * Picked from 10000-23999, so the metrics ports (+8000) stay below Linux's
 * ephemeral range (32768 up), where outgoing connections would take them.
 */
const PICK_LOW = 10_000;
const PICK_SPAN = 14_000;
/** Bound on the random tries before giving up (a machine that busy needs ports given). */
const PICK_TRIES = 500;

/** Every port a system with these ports binds. */
function boundPorts(p: ClusterPorts): number[] {
  return [p.gateway, p.console, ...[p.registry, p.router, p.containerManager].flatMap((x) => [x, x + METRICS_PORT_OFFSET])];
}

async function allFree(host: string, ports: number[]): Promise<boolean> {
  if (new Set(ports).size !== ports.length) return false;
  for (const port of ports) if (!(await isPortFree(host, port))) return false;
  return true;
}

/**
 * A named cluster's ports: the ones it had (`previous`) when they are all free
 * again, so its addresses stay the same from one `up` to the next; otherwise
 * free ones picked at random. Another program may still take one before the
 * service binds it: `clipper up` then says which port, as for any port in use.
 */
export async function pickClusterPorts(host: string, previous?: ClusterPorts): Promise<ClusterPorts> {
  if (previous !== undefined && (await allFree(host, boundPorts(previous)))) return previous;
  const picked: number[] = [];
  for (let tries = 0; picked.length < 5 && tries < PICK_TRIES; tries++) {
    const port = PICK_LOW + Math.floor(Math.random() * PICK_SPAN);
    // Registry, router and container-manager (the first three) need their metrics port free too.
    const needs = picked.length < 3 ? [port, port + METRICS_PORT_OFFSET] : [port];
    const taken = picked.flatMap((p, i) => (i < 3 ? [p, p + METRICS_PORT_OFFSET] : [p]));
    if (needs.some((p) => taken.includes(p))) continue;
    if (await allFree(host, needs)) picked.push(port);
  }
  const [registry, router, containerManager, gateway, console] = picked;
  if (registry === undefined || router === undefined || containerManager === undefined || gateway === undefined || console === undefined) {
    throw new Error(
      `found no free ports on ${host} in ${PICK_LOW}-${PICK_LOW + PICK_SPAN - 1} after ${PICK_TRIES} tries; give them with --gateway-port and the other port flags`,
    );
  }
  return { gateway, registry, router, containerManager, console };
}

/** One local system as `clipper clusters` shows it. */
export interface LocalCluster {
  name: string;
  dataDir: string;
  /** up: every recorded service runs; degraded: some do; stopped: none (or nothing recorded). */
  state: "up" | "degraded" | "stopped";
  services: ServicesFile | undefined;
}

/** The default cluster (when its data directory holds anything) and every named one under <home>/clusters, by name. */
export function listLocalClusters(env: Record<string, string | undefined>, cwd: string): LocalCluster[] {
  const home = clipperHome(env, cwd);
  const found: { name: string; dataDir: string }[] = [];
  const defaultDir = defaultDataDir(env, cwd);
  if (fs.existsSync(defaultDir)) found.push({ name: DEFAULT_CLUSTER, dataDir: defaultDir });
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(home, "clusters"), { withFileTypes: true }).flatMap((e) => (e.isDirectory() && CLUSTER_NAME.test(e.name) ? [e.name] : []));
  } catch {
    // No named cluster was ever started.
  }
  for (const name of names.sort()) found.push({ name, dataDir: clusterDataDir(home, name) });
  return found.map(({ name, dataDir }) => {
    const services = safeReadServices(dataDir);
    const running = services?.services.filter(isRunning).length ?? 0;
    const state = running === 0 ? "stopped" : running === services?.services.length ? "up" : "degraded";
    return { name, dataDir, state, services };
  });
}

/** host:port of a recorded service, or "-". */
export function recordedAddress(file: ServicesFile | undefined, service: string): string {
  const s = file?.services.find((x) => x.name === service);
  return s === undefined ? "-" : `${connectHost(s.host)}:${s.port}`;
}

function safeReadServices(dataDir: string): ServicesFile | undefined {
  try {
    return readServicesFile(dataDir);
  } catch {
    return undefined;
  }
}
