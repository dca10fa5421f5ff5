// The supervisor `clipper up` leaves running (its composition root): restarts the services of one data
// directory when they exit, and takes `clipper restart` requests on a unix socket. It owns nothing else:
// SIGTERM (what `clipper down` sends first) makes it exit at once, leaving every service as it is.
//   node dist/supervisor/main.mjs --data-dir DIR [--health-timeout-ms MS]   (bundled by supervisor-launcher.ts)
import { parseArgs } from "node:util";
import { ServiceSupervisor } from "./service-supervisor.js";
import { isRunning, processStartTicks, readServicesFile } from "./supervisor.js";
import { serveControl, supervisorSocketPath } from "./supervisor-control.js";

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { "data-dir": { type: "string" }, "health-timeout-ms": { type: "string" } } });
  const dataDir = values["data-dir"];
  if (dataDir === undefined) throw new Error("--data-dir is required");
  const file = readServicesFile(dataDir);
  if (file === undefined) {
    log(`nothing to supervise: no ${dataDir}/run/services.json`);
    return 1;
  }
  if (file.supervisor !== undefined && file.supervisor.pid !== process.pid && isRunning(file.supervisor)) {
    log(`another supervisor (pid ${file.supervisor.pid}) already watches ${dataDir}`);
    return 1;
  }
  const healthTimeoutMs = Number(values["health-timeout-ms"] ?? 60_000);
  const supervisor = new ServiceSupervisor(file, { healthTimeoutMs, log });
  const control = await serveControl(supervisorSocketPath(dataDir), {
    restart: async (name, onProgress) => ({ pid: (await supervisor.restart(name, onProgress)).pid }),
  });
  const { lost } = supervisor.start({ pid: process.pid, startTicks: processStartTicks(process.pid), socket: control.socket, startedAtMs: Date.now() });
  log(`supervising ${file.services.map((s) => `${s.name} (pid ${s.pid})`).join(", ")} in ${dataDir}`);
  const reason = await Promise.race([
    lost,
    ...(["SIGTERM", "SIGINT", "SIGHUP"] as const).map((signal) => new Promise<string>((resolve) => process.once(signal, () => resolve(`received ${signal}`)))),
  ]);
  log(`${reason}; exiting, the services left as they are`);
  await supervisor.close();
  await control.close();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`supervisor failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
