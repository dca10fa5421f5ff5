import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { DockerEngineClient } from "../backends/docker-engine-client.js";

const run = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, "..", "..", "..");
/** crun fails on this machine's hybrid cgroups (docs/containers.md). */
const PODMAN = ["--runtime", "runc"];

/**
 * Whether the container tests run here: when podman and runc are installed,
 * or when CLIPPER_PODMAN_TESTS=1 asks for them (then a missing tool fails the
 * tests instead of skipping them).
 */
export function podmanTestGate(): { run: boolean; required: boolean; missing: string[] } {
  const missing = ["podman", "runc", "debootstrap"].filter((tool) => {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
  const required = process.env.CLIPPER_PODMAN_TESTS === "1";
  if (missing.length > 0 && !required) {
    console.warn(
      `container backend tests skipped: ${missing.join(", ")} not installed (apt-get install -y podman runc debootstrap; CLIPPER_PODMAN_TESTS=1 makes this a failure)`,
    );
  }
  return { run: missing.length === 0 || required, required, missing };
}

/** Makes (or finds cached) the Python runtime image with scripts/podman/build-images.sh; its name. */
export async function buildRuntimeImage(): Promise<string> {
  const { stdout } = await run(path.join(repoRoot, "scripts", "podman", "build-images.sh"), [], { maxBuffer: 64 * 1024 * 1024, timeout: 20 * 60_000 });
  const image = stdout.trim().split("\n").at(-1);
  if (image === undefined || image === "") throw new Error("build-images.sh printed no image name");
  return image;
}

/** `podman system service` on a unix socket of its own, for the Docker-compatible API; stopped by stop(). */
export class PodmanService {
  readonly socketPath: string;
  private readonly output: string[] = [];

  private constructor(
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    this.socketPath = path.join(dir, "podman.sock");
  }

  static async start(timeoutMs = 30_000): Promise<PodmanService> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-podman-"));
    const child = spawn("podman", [...PODMAN, "system", "service", "--time=0", `unix://${path.join(dir, "podman.sock")}`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const service = new PodmanService(dir, child);
    const keep = (chunk: Buffer) => {
      service.output.push(chunk.toString("utf8"));
      if (service.output.length > 200) service.output.shift();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const client = new DockerEngineClient({ socketPath: service.socketPath, requestTimeoutMs: 2000 });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`podman system service exited (${child.exitCode}): ${service.output.join("")}`);
      try {
        await client.ping();
        return service;
      } catch (err) {
        if (Date.now() > deadline) {
          await service.stop();
          throw new Error(`podman system service did not answer on ${service.socketPath} within ${timeoutMs} ms: ${String(err)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once("exit", resolve));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The podman command line, beside the API: an independent view of what exists. */
export async function podman(args: string[]): Promise<string> {
  const { stdout } = await run("podman", [...PODMAN, ...args], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 });
  return stdout;
}

/** Ids of every container (running or not) carrying all of `labels` (`key=value`), from `podman ps -a`. */
export async function containersLabelled(labels: string[]): Promise<string[]> {
  const out = await podman(["ps", "-a", "--no-trunc", "--format", "{{.ID}}", ...labels.flatMap((l) => ["--filter", `label=${l}`])]);
  return out.split("\n").filter((line) => line !== "");
}
