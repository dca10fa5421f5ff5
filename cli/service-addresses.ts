/** Which cluster, where its data directory and its services are: flags first, then what `clipper up` recorded, then the defaults. */
import path from "node:path";
import { defaults } from "../services/shared/index.js";
import { CliError } from "./cli-error.js";
import { clipperHome, clusterDataDir, DEFAULT_CLUSTER, defaultDataDir, validateClusterName } from "./clusters.js";
import type { CliEnvironment, FlagValues, ServiceAddresses } from "./invocation.js";
import { connectHost, servicesFilePath, tryReadServicesFile } from "./supervisor.js";

export interface ResolvedCluster {
  name: string;
  dataDir: string;
}

/**
 * `--cluster` (else $CLIPPER_CLUSTER, else the default cluster) and its data
 * directory: `--data-dir` when given, else the default cluster's
 * ($CLIPPER_DATA_DIR, else ~/.clipper/data) or <home>/clusters/NAME. Throws
 * an Error for a name that is not a DNS label.
 */
export function resolveCluster(values: FlagValues, env: CliEnvironment): ResolvedCluster {
  const flag = values.cluster;
  const name = validateClusterName(typeof flag === "string" ? flag : env.env.CLIPPER_CLUSTER || DEFAULT_CLUSTER);
  const dataDirFlag = values["data-dir"];
  if (typeof dataDirFlag === "string") return { name, dataDir: path.resolve(env.cwd, dataDirFlag) };
  return { name, dataDir: name === DEFAULT_CLUSTER ? defaultDataDir(env.env, env.cwd) : clusterDataDir(clipperHome(env.env, env.cwd), name) };
}

/**
 * Flags win; then what `clipper up` recorded in the data dir; then, for the
 * default cluster only, the default ports on 127.0.0.1. A named cluster that
 * is not up has no address: asking for one is an error naming it, rather than
 * a call that would reach the default cluster's services.
 */
export function resolveAddresses(values: FlagValues, cluster: ResolvedCluster): ServiceAddresses {
  const file = tryReadServicesFile(cluster.dataDir);
  const recorded = (name: string, port: number) => {
    const s = file?.services.find((x) => x.name === name);
    if (s !== undefined) return `${connectHost(s.host)}:${s.port}`;
    if (cluster.name === DEFAULT_CLUSTER) return `127.0.0.1:${port}`;
    throw new CliError(
      `cluster "${cluster.name}" is not running (no ${name} in ${servicesFilePath(cluster.dataDir)}); \`clipper up --cluster ${cluster.name}\` starts it`,
    );
  };
  const pick = (flag: string, name: string, port: number) => {
    const v = values[flag];
    return typeof v === "string" ? v : recorded(name, port);
  };
  // Getters: a command that needs no service (down, token create) runs whether or not the cluster is up.
  return {
    get registry() {
      return pick("registry", "registry", defaults.registryPort);
    },
    get containerManager() {
      return pick("container-manager", "container-manager", defaults.containerManagerPort);
    },
    get gateway() {
      return pick("gateway", "gateway", defaults.gatewayPort);
    },
  };
}

/** The router's metrics address recorded by `clipper up` (the gateway's port when it runs the router in-process), else the default metrics port. */
export function routerMetricsAddress(dataDir: string): string {
  const file = tryReadServicesFile(dataDir);
  const router = file?.services.find((s) => s.name === "router");
  if (router !== undefined && router.metricsPort !== null) return `${connectHost(router.host)}:${router.metricsPort}`;
  const gateway = file?.services.find((s) => s.name === "gateway");
  if (router === undefined && gateway !== undefined) return `${connectHost(gateway.host)}:${gateway.port}`;
  return `127.0.0.1:${defaults.routerMetricsPort}`;
}
