import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "./gen/clipper/common/v1/data_pb.js";
import { ModelService } from "./gen/clipper/model/v1/model_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";

// The package as a model author gets it: `npm pack`, the tarball unpacked into a fresh folder's
// node_modules, and its runner started with plain node (no tsx) for a model written in JavaScript.
// Its dependencies are linked from this checkout's node_modules rather than downloaded, so the test
// needs no registry; it checks what the tarball holds and that it needs nothing outside itself.

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

/** The installed copy of a dependency, from the nearest node_modules above the package. */
function installedDir(name: string): string {
  for (let dir = packageDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (existsSync(candidate)) return realpathSync(candidate);
    if (path.dirname(dir) === dir) throw new Error(`${name} is not installed above ${packageDir}`);
  }
}

describe("the packed package", () => {
  let dir: string;
  let files: string[];
  let runner: ChildProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "clipper-model-sdk-"));
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: packageDir });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = packed?.files.map((f) => f.path) ?? [];
    const installed = path.join(dir, "project", "node_modules", "@clipper", "model-sdk");
    mkdirSync(installed, { recursive: true });
    await run("tar", ["-xzf", path.join(dir, packed?.filename ?? ""), "-C", installed, "--strip-components=1"]);
    const manifest = JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    for (const name of Object.keys(manifest.dependencies)) {
      const link = path.join(dir, "project", "node_modules", name);
      mkdirSync(path.dirname(link), { recursive: true });
      symlinkSync(installedDir(name), link);
    }
  }, 60_000);

  afterAll(async () => {
    if (runner?.exitCode === null) {
      runner.kill("SIGKILL");
      await once(runner, "exit");
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("holds the built JavaScript, its declarations and the README, and no sources or tests", () => {
    expect(files).toEqual(expect.arrayContaining(["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/runner.js"]));
    expect(files).toContain("dist/gen/clipper/model/v1/model_service_pb.js");
    expect(files.filter((f) => !f.startsWith("dist/") && f !== "package.json" && f !== "README.md")).toEqual([]);
    expect(files.filter((f) => f.includes(".test.") || (f.endsWith(".ts") && !f.endsWith(".d.ts")))).toEqual([]);
  });

  it("runs a JavaScript model with its runner from node_modules, under plain node", async () => {
    const project = path.join(dir, "project");
    writeFileSync(
      path.join(project, "sum.mjs"),
      'import { fsum } from "@clipper/model-sdk";\nexport default (inputs) => inputs.map((xs) => String(fsum(xs)));\n',
    );
    runner = spawn(process.execPath, [path.join("node_modules", "@clipper", "model-sdk", "dist", "runner.js")], {
      cwd: project,
      env: {
        PATH: process.env.PATH ?? "",
        CLIPPER_MODEL_PORT: "0",
        CLIPPER_MODEL_NAME: "sum",
        CLIPPER_MODEL_VERSION: "1",
        CLIPPER_INPUT_TYPE: "doubles",
        CLIPPER_MODEL_MODULE: "sum.mjs",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    runner.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = createInterface({ input: runner.stdout as NodeJS.ReadableStream });
    const [first] = (await Promise.race([once(lines, "line"), once(runner, "exit").then(() => [`exited: ${stderr}`])])) as string[];
    expect(first).toMatch(/"msg":"listening"/);
    const { port } = JSON.parse(first as string) as { port: number };

    const baseUrl = `http://127.0.0.1:${port}`;
    const sessions = new Http2SessionManager(baseUrl);
    const transport = createGrpcTransport({ baseUrl, sessionManager: sessions });
    try {
      const res = await createClient(ModelService, transport).predict({ inputs: { type: InputType.DOUBLES, lengths: [3, 1], doubles: [1.1, 2.2, 3.3, 5] } });
      expect(res.outputs.map((o) => o.result.value)).toEqual(["6.6", "5"]);
      expect((await createClient(Health, transport).check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      sessions.abort();
    }
    runner.kill("SIGTERM");
    const [code] = (await once(runner, "exit")) as [number | null];
    expect(code).toBe(0);
  }, 30_000);
});
