// Processes a benchmark starts beside the system (baselines, peers, extra gateways): each in its
// own process group, stopped with everything it spawned.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { repoRoot, waitForListening } from "../test/system.js";

/** A process started for a baseline (its own process group, so helpers it spawns stop with it). */
export class Helper {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static async start(what: string, command: string, args: string[], timeoutMs: number): Promise<Helper> {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const port = await waitForListening(child, what, [], timeoutMs).catch(async (err: unknown) => {
      await new Helper(child, 0).stop();
      throw err;
    });
    return new Helper(child, port);
  }

  /** SIGTERM to the group, SIGKILL after 20 s; then SIGKILL to every descendant seen before (Ray's workers leave the group). */
  async stop(): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const family = descendants(pid);
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-pid, signal);
      } catch {
        // already gone
      }
    };
    signalGroup("SIGTERM");
    const timer = setTimeout(() => signalGroup("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
    signalGroup("SIGKILL");
    for (const child of family) {
      try {
        process.kill(child, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/** Every process below `root`, from /proc (Linux); empty elsewhere. */
function descendants(root: number): number[] {
  const childrenOf = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command name, which may itself contain spaces and parentheses: state, ppid, ...
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const siblings = childrenOf.get(ppid) ?? [];
      siblings.push(Number(entry));
      childrenOf.set(ppid, siblings);
    } catch {
      // the process ended meanwhile
    }
  }
  const found: number[] = [];
  const queue = [root];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of childrenOf.get(next) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** A port free right now (Ray Serve must be told its HTTP port up front). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
