import fs from "node:fs";

/**
 * The resident memory of a process in bytes (VmRSS of /proc/<pid>/status), or
 * undefined where there is no /proc (not Linux) or the process is gone.
 */
export function residentBytes(pid: number): number | undefined {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

export const formatMiB = (bytes: number) => `${Math.round(bytes / 1_048_576)} MiB`;
