/** Where the data directory and the services are: flags first, then what `clipper up` recorded, then the defaults. */
import os from "node:os";
import path from "node:path";
import { defaults } from "../services/shared/index.js";
import type { CliEnvironment, FlagValues, ServiceAddresses } from "./invocation.js";
import { connectHost, readServicesFile, type ServicesFile } from "./supervisor.js";

export function resolveDataDir(values: FlagValues, env: CliEnvironment): string {
  const flag = values["data-dir"];
  const raw = typeof flag === "string" ? flag : env.env.CLIPPER_DATA_DIR || path.join(os.homedir(), ".clipper", "data");
  return path.resolve(env.cwd, raw);
}

/** Flags win; then what `clipper up` recorded in the data dir; then the default ports on 127.0.0.1. */
export function resolveAddresses(values: FlagValues, dataDir: string): ServiceAddresses {
  const file = recordedServices(dataDir);
  const recorded = (name: string, port: number) => {
    const s = file?.services.find((x) => x.name === name);
    return s === undefined ? `127.0.0.1:${port}` : `${connectHost(s.host)}:${s.port}`;
  };
  const pick = (flag: string, name: string, port: number) => {
    const v = values[flag];
    return typeof v === "string" ? v : recorded(name, port);
  };
  return {
    registry: pick("registry", "registry", defaults.registryPort),
    containerManager: pick("container-manager", "container-manager", defaults.containerManagerPort),
    gateway: pick("gateway", "gateway", defaults.gatewayPort),
  };
}

/** The router's metrics address recorded by `clipper up` (the gateway's port when it runs the router in-process), else the default metrics port. */
export function routerMetricsAddress(dataDir: string): string {
  const file = recordedServices(dataDir);
  const router = file?.services.find((s) => s.name === "router");
  if (router !== undefined && router.metricsPort !== null) return `${connectHost(router.host)}:${router.metricsPort}`;
  const gateway = file?.services.find((s) => s.name === "gateway");
  if (router === undefined && gateway !== undefined) return `${connectHost(gateway.host)}:${gateway.port}`;
  return `127.0.0.1:${defaults.routerMetricsPort}`;
}

/** What `clipper up` recorded; an unreadable file counts as none. */
function recordedServices(dataDir: string): ServicesFile | undefined {
  try {
    return readServicesFile(dataDir);
  } catch {
    return undefined;
  }
}
