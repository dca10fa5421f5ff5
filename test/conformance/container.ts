import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";

// A model container started from a command line, with the environment the container-manager gives
// a replica (services/container-manager/backends/launch.ts): PATH, HOME and LANG of this process,
// CLIPPER_MODEL_PORT, CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION, CLIPPER_INPUT_TYPE and
// CLIPPER_METRICS_PORT, plus what the caller adds. It runs in its own process group; SIGTERM goes
// to the process (as the container-manager sends it), cleanup kills the whole group.

export interface ContainerSpec {
  command: readonly string[];
  cwd?: string;
  /** Added to the replica's environment. */
  env?: Readonly<Record<string, string>>;
  /** Pass this process's whole environment (not only PATH, HOME and LANG). */
  inheritEnv?: boolean;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** performance.now() when it exited. */
  atMs: number;
}

/** A free loopback port (bound, read, released: the container binds it next). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== "object" || address === null) throw new Error("no port");
  return address.port;
}

export class Container {
  readonly startedAtMs = performance.now();
  readonly exited: Promise<Exit>;
  private exit: Exit | undefined;
  private readonly lines: { atMs: number; text: string }[] = [];
  private readonly child: ChildProcess;

  private constructor(
    spec: ContainerSpec,
    readonly port: number,
    readonly metricsPort: number,
    env: Record<string, string>,
  ) {
    const [command, ...args] = spec.command;
    if (command === undefined) throw new Error("no container command");
    this.child = spawn(command, args, { cwd: spec.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once("error", (err) => {
        this.record(`kit: cannot start ${command}: ${err.message}`);
        this.exit ??= { code: null, signal: null, atMs: performance.now() };
        resolve(this.exit);
      });
      this.child.once("exit", (code, signal) => {
        this.exit ??= { code, signal, atMs: performance.now() };
        resolve(this.exit);
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = "";
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const line of parts) this.record(line);
      });
      stream?.on("end", () => partial !== "" && this.record(partial));
    }
  }

  static async start(spec: ContainerSpec, replica: { name: string; version: string; inputType: string; env?: Record<string, string> }): Promise<Container> {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const env: Record<string, string> = {};
    if (spec.inheritEnv) Object.assign(env, process.env);
    else {
      for (const key of ["PATH", "HOME", "LANG"]) {
        const value = process.env[key];
        if (value !== undefined) env[key] = value;
      }
    }
    Object.assign(env, spec.env, replica.env, {
      CLIPPER_METRICS_PORT: String(metricsPort),
      CLIPPER_MODEL_PORT: String(port),
      CLIPPER_MODEL_NAME: replica.name,
      CLIPPER_MODEL_VERSION: replica.version,
      CLIPPER_INPUT_TYPE: replica.inputType,
    });
    return new Container(spec, port, metricsPort, env);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  get exitInfo(): Exit | undefined {
    return this.exit;
  }

  /** When a line containing `text` was printed (performance.now()), or undefined. */
  lineAt(text: string): number | undefined {
    return this.lines.find((l) => l.text.includes(text))?.atMs;
  }

  /** The last lines the container printed, for a failure's detail. */
  tail(count = 12): string[] {
    return this.lines.slice(-count).map((l) => l.text);
  }

  describeExit(): string {
    const e = this.exit;
    if (e === undefined) return "running";
    return e.signal !== null ? `killed by ${e.signal}` : `exited with code ${e.code}`;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Kills the container's whole process group (children included) and waits for it. */
  async kill(): Promise<void> {
    const pid = this.child.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  }

  private record(text: string): void {
    this.lines.push({ atMs: performance.now(), text });
    if (this.lines.length > 2000) this.lines.splice(0, 1000);
  }
}
