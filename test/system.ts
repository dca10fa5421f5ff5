import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { ContainerManagerService } from "../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../gen/clipper/v1/management_service_pb.js";
import type { ModelSchema } from "../gen/clipper/v1/resources_pb.js";
import { buildServices, serviceNodeArgs } from "../services/build.js";
import { createGrpcTransport, type GrpcTransport } from "../services/shared/index.js";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The TypeScript SDK's example sum model (sdk/typescript/examples/sum-model.ts), served as a node_module. */
export function typescriptSumModel(name = "sum-model") {
  return {
    name,
    version: "1",
    inputType: InputType.DOUBLES,
    desiredReplicas: 1,
    runtime: { kind: { case: "nodeModule" as const, value: { modulePath: join(repoRoot, "sdk", "typescript", "examples", "sum-model.ts") } } },
  };
}

export type ServiceName = "registry" | "container-manager" | "router" | "gateway";

export interface SystemOptions {
  store?: "embedded" | "redis";
  redisUrl?: string;
  /** Reuse a data directory (e.g. across a restart); a new temp dir otherwise. */
  dataDir?: string;
  /** Extra flags per service (limits, memory limits, ...), added after the ones TestSystem sets. */
  args?: Partial<Record<ServiceName, string[]>>;
  /** Run the router inside the gateway (`--router in-process`) instead of as its own service. */
  routerInProcess?: boolean;
}

interface RunningService {
  child: ChildProcess;
  port: number;
  output: string[];
}

/**
 * The four real services as child processes on free loopback ports, started the
 * way `clipper up` starts them, for end-to-end tests.
 */
export class TestSystem {
  readonly dataDir: string;
  private readonly ownsDataDir: boolean;
  private readonly services = new Map<ServiceName, RunningService>();
  private readonly transports: GrpcTransport[] = [];

  constructor(private readonly options: SystemOptions = {}) {
    this.ownsDataDir = options.dataDir === undefined;
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "clipper-e2e-"));
  }

  address(name: ServiceName): string {
    const s = this.services.get(name);
    if (!s) throw new Error(`${name} is not running`);
    return `127.0.0.1:${s.port}`;
  }

  get gatewayUrl(): string {
    return `http://${this.address("gateway")}`;
  }

  management() {
    return createClient(ManagementService, this.transport(this.address("registry")));
  }

  containerManager() {
    return createClient(ContainerManagerService, this.transport(this.address("container-manager")));
  }

  /** Deploys a model version as the current one and waits until its replicas are ready. */
  async deploy(model: MessageInitShape<typeof ModelSchema>, timeoutSeconds = 60): Promise<void> {
    for await (const _progress of this.containerManager().deployModel({ model, setCurrent: true, timeoutSeconds })) {
      // drain the progress until READY
    }
  }

  /** Creates an application of doubles, deploys its model and links them. */
  async deployApp(
    app: string,
    model: MessageInitShape<typeof ModelSchema> & { name: string },
    options: { sloMicros?: bigint; defaultOutput?: string; timeoutSeconds?: number } = {},
  ): Promise<void> {
    const mgmt = this.management();
    await mgmt.createApplication({
      name: app,
      inputType: InputType.DOUBLES,
      defaultOutput: options.defaultOutput ?? "-1",
      sloMicros: options.sloMicros ?? 1_000_000n,
    });
    await this.deploy(model, options.timeoutSeconds);
    await mgmt.linkModel({ application: app, modelName: model.name });
  }

  transport(address: string): GrpcTransport {
    const t = createGrpcTransport({ address });
    this.transports.push(t);
    return t;
  }

  async start(): Promise<this> {
    for (const name of ["registry", "container-manager", "router", "gateway"] as const) {
      if (name === "router" && this.options.routerInProcess) continue;
      await this.startService(name);
    }
    return this;
  }

  /** Starts one service; a restarted registry keeps its port so the others reconnect to it. */
  async startService(name: ServiceName, port = 0): Promise<void> {
    const args = ["--host", "127.0.0.1", "--port", String(port)];
    if (name !== "gateway") args.push("--metrics-port", "0");
    if (name === "registry") {
      args.push("--data-dir", this.dataDir, "--store", this.options.store ?? "embedded");
      if (this.options.redisUrl) args.push("--redis-url", this.options.redisUrl);
    } else {
      args.push("--registry", this.address("registry"));
    }
    if (name === "container-manager") args.push("--data-dir", this.dataDir);
    if (name === "gateway") args.push("--router", this.options.routerInProcess ? "in-process" : this.address("router"));
    args.push(...(this.options.args?.[name] ?? []));
    // CLIPPER_CPU_PROF_DIR: every service writes a V8 CPU profile there when it exits (profiling under the bench).
    const profile = process.env.CLIPPER_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.CLIPPER_CPU_PROF_DIR}`] : [];
    await buildServices(repoRoot);
    const child = spawn(process.execPath, [...profile, ...serviceNodeArgs(repoRoot, name), ...args], {
      cwd: repoRoot,
      env: { ...process.env, CLIPPER_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output: string[] = [];
    const boundPort = await waitForListening(child, name, output, 30_000);
    this.services.set(name, { child, port: boundPort, output });
  }

  /** Stops one service: SIGTERM, or SIGKILL to simulate a crash. */
  async stopService(name: ServiceName, signal: NodeJS.Signals = "SIGTERM"): Promise<number> {
    const s = this.services.get(name);
    if (!s) return 0;
    this.services.delete(name);
    await stopChild(s.child, signal);
    return s.port;
  }

  /** The process id of a running service. */
  pid(name: ServiceName): number | undefined {
    return this.services.get(name)?.child.pid;
  }

  logs(name: ServiceName): string[] {
    return this.services.get(name)?.output ?? [];
  }

  /** The port of a service's /metrics, from its "listening" log line. */
  /** Where the router's series are: its own metrics port, or the gateway's /metrics when it runs in-process. */
  routerMetricsUrl(): string {
    return this.options.routerInProcess ? `${this.gatewayUrl}/metrics` : `http://127.0.0.1:${this.metricsPort("router")}/metrics`;
  }

  metricsPort(name: ServiceName): number {
    for (const line of this.logs(name)) {
      try {
        const msg = JSON.parse(line) as { msg?: string; metricsPort?: number };
        if (msg.msg === "listening" && typeof msg.metricsPort === "number") return msg.metricsPort;
      } catch {
        // not JSON
      }
    }
    throw new Error(`${name} logged no metrics port`);
  }

  async stop(): Promise<void> {
    for (const t of this.transports) t.close();
    for (const name of ["gateway", "router", "container-manager", "registry"] as const) await this.stopService(name);
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * The port a child process announces in its JSON "listening" log line (every
 * service's main.ts logs one). Keeps the last lines of its output in `output`
 * (bounded) for error messages; rejects if it exits or is not listening in time.
 */
export function waitForListening(child: ChildProcess, what: string, output: string[], timeoutMs: number): Promise<number> {
  const remember = (line: string) => {
    output.push(line);
    if (output.length > 500) output.shift();
  };
  const tail = () => output.slice(-20).join("\n");
  createInterface({ input: child.stderr! }).on("line", remember);
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start in ${timeoutMs} ms:\n${tail()}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      remember(line);
      try {
        const msg = JSON.parse(line) as { msg?: string; port?: number };
        if (msg.msg === "listening" && typeof msg.port === "number") {
          clearTimeout(timer);
          resolve(msg.port);
        }
      } catch {
        // not a JSON log line
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${tail()}`));
    });
  });
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}

/** A model served from a Python file by the Python SDK's runner (the repository's .venv), as `clipper model deploy --python` does. */
export function pythonFileModel(name: string, file: string, func = "predict") {
  return {
    name,
    version: "1",
    inputType: InputType.DOUBLES,
    desiredReplicas: 1,
    runtime: {
      kind: {
        case: "command" as const,
        value: {
          argv: [join(repoRoot, ".venv", "bin", "python"), "-m", "clipper_runtime.file_runner", file, func],
          env: { PYTHONPATH: join(repoRoot, "sdk", "python", "src") },
          workingDir: "",
        },
      },
    },
  };
}
