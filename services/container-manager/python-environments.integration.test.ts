// Per-model Python environments, built for real with uv and with pip from PyPI, then a closure deployed
// through the container-manager that runs in one. Needs the checkout's .venv with uv (.ci/run installs it; CI fails without).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { ContainerManagerService, type DeployModelResponse, DeployStage } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { type Model, ModelSchema, type PythonClosureRuntime, PythonClosureRuntimeSchema } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, createGrpcTransport, createLogger, type GrpcTransport, type RunningGrpcServer } from "../shared/index.js";
import { type RunningContainerManager, startContainerManager } from "./manager.js";
import { PythonEnvironments, type PythonEnvironmentsOptions } from "./python-environments.js";
import { FakeRegistry } from "./testing/fake-registry.js";

const repoRoot = path.resolve(import.meta.dirname, "..", "..");
const venvPython = path.join(repoRoot, ".venv", "bin", "python");
const sdkPyproject = path.join(repoRoot, "sdk", "python", "pyproject.toml");
const hasUv = fs.existsSync(path.join(repoRoot, ".venv", "bin", "uv"));
const logger = createLogger({ service: "python-environments-test", level: "silent" });
/** An older release of a small pure-Python package than the SDK venv's (requirements-dev.txt pins packaging 26.4). */
const OLD_PACKAGING = "packaging==23.2";
const MISSING = "no-such-package-clipper==1.0";

const pythonVersion = () => execFileSync(venvPython, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8" }).trim();
const venvPackagingVersion = () => execFileSync(venvPython, ["-c", "import packaging; print(packaging.__version__)"], { encoding: "utf8" }).trim();
const inEnvironment = (python: string, code: string) => execFileSync(python, ["-c", code], { encoding: "utf8", env: { PATH: process.env.PATH ?? "" } }).trim();
const envDirectories = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith("env-"));

function closure(packages: string[], interpreter = venvPython): PythonClosureRuntime {
  return create(PythonClosureRuntimeSchema, { artifactDigest: "0".repeat(64), pythonVersion: pythonVersion(), packages, interpreter });
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, performance.now() - started];
}

async function failure(work: Promise<unknown>): Promise<ConnectError> {
  try {
    await work;
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected a failure");
}

describe.skipIf((!fs.existsSync(venvPython) || !hasUv) && !process.env.CI)("Python environments built from recorded packages", () => {
  const dirs: string[] = [];
  const environments = (options: Partial<PythonEnvironmentsOptions> = {}) => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-envs-"));
    dirs.push(directory);
    return { envs: new PythonEnvironments({ directory, sdkPyproject, defaultPython: venvPython, logger, ...options }), directory };
  };
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it("builds one environment with uv for two deploys at once, where the pinned version and the runtime import, then reuses it", async () => {
    const { envs, directory } = environments();
    const runtime = closure([OLD_PACKAGING]);
    const progress: string[] = [];
    const [[first, second], buildMs] = await timed(() =>
      Promise.all([envs.prepare(runtime, (m) => progress.push(m)), envs.prepare(runtime, (m) => progress.push(m))]),
    );
    expect(envs.builds).toBe(1);
    expect(second.interpreter.path).toBe(first.interpreter.path);
    expect(first.interpreter.note).toMatch(
      /the environment built for the model's packages \(packaging==23\.2; key [0-9a-f]{12}\): .* lacks packaging==23\.2 \(it has /,
    );
    // Whichever asked first builds; the other waits for that build.
    expect(progress.filter((m) => m.startsWith("building a Python environment for packaging==23.2 with uv"))).toHaveLength(1);
    expect(progress.filter((m) => /^waiting for the Python environment [0-9a-f]{12} another deploy is building/.test(m))).toHaveLength(1);
    expect(inEnvironment(first.interpreter.path, "import packaging; print(packaging.__version__)")).toBe("23.2");
    // The runtime's dependencies are there, for clipper_runtime on PYTHONPATH.
    expect(inEnvironment(first.interpreter.path, "import grpc, google.protobuf, cloudpickle, numpy, prometheus_client; print('ok')")).toBe("ok");
    expect(envs.interpreterFor(runtime).path).toBe(first.interpreter.path);
    first.release();
    second.release();

    const [again, hitMs] = await timed(() => envs.prepare(runtime));
    expect(envs.builds).toBe(1);
    expect(again.interpreter.path).toBe(first.interpreter.path);
    // A fresh object on the same directory (a restarted container-manager) finds it too.
    const restarted = new PythonEnvironments({ directory, sdkPyproject, defaultPython: venvPython, logger });
    const [found, restartedMs] = await timed(() => restarted.prepare(runtime));
    expect(restarted.builds).toBe(0);
    expect(found.interpreter.path).toBe(first.interpreter.path);
    console.log(`uv build ${buildMs.toFixed(0)} ms; cached ${hitMs.toFixed(0)} ms; cached after a restart ${restartedMs.toFixed(0)} ms`);
    expect(hitMs).toBeLessThan(buildMs);
  }, 240_000);

  it("runs the recorded interpreter when it has every recorded package at its version, building nothing", async () => {
    const { envs } = environments();
    const lease = await envs.prepare(closure([`packaging==${venvPackagingVersion()}`]));
    expect(lease.interpreter.path).toBe(venvPython);
    expect(lease.interpreter.note).toBe(
      `python: ${venvPython}, the interpreter recorded with the model (it has every recorded package: packaging==${venvPackagingVersion()})`,
    );
    expect(envs.builds).toBe(0);
  });

  it("fails fast naming a package that cannot be resolved, and leaves no half-built environment", async () => {
    const { envs, directory } = environments();
    const started = performance.now();
    const err = await failure(envs.prepare(closure([OLD_PACKAGING, MISSING])));
    const seconds = (performance.now() - started) / 1000;
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(
      /^cannot build the Python environment for the model's packages \(no-such-package-clipper==1\.0, packaging==23\.2\): the package no-such-package-clipper==1\.0 cannot be installed: error: .*no-such-package-clipper was not found in the package registry/,
    );
    expect(seconds).toBeLessThan(30);
    expect(fs.readdirSync(directory)).toEqual([]);
    console.log(`unresolvable package refused in ${seconds.toFixed(1)} s`);
  }, 60_000);

  it("stops a build at its timeout and removes what it had made", async () => {
    const { envs, directory } = environments({ buildTimeoutMs: 1 });
    const err = await failure(envs.prepare(closure(["six==1.16.0"])));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.rawMessage).toMatch(/took longer than --python-env-build-timeout-seconds/);
    expect(fs.readdirSync(directory)).toEqual([]);
  });

  it("evicts the least recently used environment no model uses, and refuses a build when those in use fill the cache", async () => {
    let inUse: Model[] = [];
    const { envs, directory } = environments({ maxEnvironments: 2, models: () => inUse });
    const a = closure(["six==1.16.0"]);
    const b = closure(["six==1.15.0"]);
    const c = closure(["six==1.14.0"]);
    const d = closure(["six==1.13.0"]);
    const model = (runtime: PythonClosureRuntime) =>
      create(ModelSchema, { name: "m", version: "1", desiredReplicas: 1, runtime: { kind: { case: "pythonClosure", value: runtime } } });
    for (const runtime of [a, b]) (await envs.prepare(runtime)).release();
    expect(envs.list().map((r) => r.packages)).toEqual([["six==1.16.0"], ["six==1.15.0"]]);
    // a is the oldest, but a registered model with replicas uses it: b goes.
    inUse = [model(a)];
    const lease = await envs.prepare(c);
    expect(envs.list().map((r) => r.packages)).toEqual([["six==1.16.0"], ["six==1.14.0"]]);
    expect(envDirectories(directory)).toHaveLength(2);
    expect(envs.ready(b)).toBe(false);
    // c is still leased by its deploy, a is in use: no room for d.
    const full = await failure(envs.prepare(d));
    expect(full.code).toBe(Code.ResourceExhausted);
    expect(full.rawMessage).toMatch(/the environments in use fill the cache \(2 environments, .*--python-envs-max-count 2/);
    lease.release();
    (await envs.prepare(d)).release();
    expect(envs.list().map((r) => r.packages)).toEqual([["six==1.16.0"], ["six==1.13.0"]]);
    expect(envs.builds).toBe(4);
  }, 240_000);

  it("removes a new environment that cannot fit the byte bound, naming it", async () => {
    const { envs, directory } = environments({ maxBytes: 1024 * 1024 });
    const err = await failure(envs.prepare(closure(["six==1.16.0"])));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(
      /^cannot keep the Python environment for six==1\.16\.0: it alone has \d+ bytes, more than --python-envs-max-bytes 1048576; it was removed$/,
    );
    expect(fs.readdirSync(directory)).toEqual([]);
  }, 120_000);

  it("builds with python -m venv and pip when told to (or when there is no uv), and names pip's unresolvable package", async () => {
    const { envs, directory } = environments({ installer: "pip" });
    expect(envs.uv()).toBeUndefined();
    const [lease, buildMs] = await timed(() => envs.prepare(closure([OLD_PACKAGING])));
    expect(inEnvironment(lease.interpreter.path, "import packaging, grpc; print(packaging.__version__)")).toBe("23.2");
    const err = await failure(envs.prepare(closure([MISSING])));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/the package no-such-package-clipper==1\.0 cannot be installed: ERROR: .*no-such-package-clipper==1\.0/);
    expect(envDirectories(directory)).toHaveLength(1);
    console.log(`pip build ${buildMs.toFixed(0)} ms`);
  }, 300_000);
});

describe.skipIf((!fs.existsSync(venvPython) || !hasUv) && !process.env.CI)("deploying a closure that records packages", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-cm-envs-"));
  const fakeRegistry = new FakeRegistry();
  let registryServer: RunningGrpcServer;
  let manager: RunningContainerManager;
  let transport: GrpcTransport;
  let client: ReturnType<typeof createClient<typeof ContainerManagerService>>;
  const transports: GrpcTransport[] = [];
  let digest = "";

  beforeAll(async () => {
    registryServer = await fakeRegistry.start();
    manager = await startContainerManager({
      host: "127.0.0.1",
      port: 0,
      registry: registryServer.address,
      dataDir,
      repoRoot,
      python: venvPython,
      logger,
      maxArtifactBytes: 1024 * 1024,
      deployTimeoutMs: 60_000,
      backend: { healthIntervalMs: 100, restartPolicy: { initialDelayMs: 100, maxDelayMs: 1000, stableAfterMs: 60_000, maxStartFailures: 3 } },
    });
    transport = createGrpcTransport({ address: manager.server.address });
    client = createClient(ContainerManagerService, transport);
    // A closure that answers the version of `packaging` it imports where it runs.
    const script = [
      "import sys",
      "from clipper_runtime.artifact import dump_artifact",
      "def predict(xs):",
      "    import packaging",
      "    return [packaging.__version__ for _ in xs]",
      `sys.stdout.buffer.write(dump_artifact(predict, ["${OLD_PACKAGING}"]))`,
    ].join("\n");
    const artifact = execFileSync(venvPython, ["-c", script], { env: { ...process.env, PYTHONPATH: path.join(repoRoot, "sdk", "python", "src") } });
    digest = createHash("sha256").update(artifact).digest("hex");
    await client.uploadArtifact(
      (async function* () {
        yield { part: { case: "header" as const, value: { sizeBytes: BigInt(artifact.length), sha256: digest } } };
        yield { part: { case: "chunk" as const, value: artifact } };
      })(),
    );
  }, 120_000);

  afterAll(async () => {
    transport?.close();
    for (const t of transports) t.close();
    await manager?.close();
    await registryServer?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function deploy(version: string, packages: string[]): Promise<DeployModelResponse[]> {
    const seen: DeployModelResponse[] = [];
    const runtime = {
      kind: { case: "pythonClosure" as const, value: { artifactDigest: digest, pythonVersion: pythonVersion(), packages, interpreter: venvPython } },
    };
    for await (const res of client.deployModel({ model: { name: "pkg-version", version, inputType: InputType.DOUBLES, runtime, desiredReplicas: 1 } }))
      seen.push(res);
    return seen;
  }

  async function predict(stages: DeployModelResponse[]): Promise<string | undefined> {
    const t = createGrpcTransport({ address: stages.at(-1)?.replicas[0]?.endpoint ?? "" });
    transports.push(t);
    const res = await createClient(ModelService, t).predict({ inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [1] } });
    return res.outputs[0]?.result.value;
  }

  it("runs the closure in its own environment, which reports the pinned version, and a second version reuses it", async () => {
    const [stages, firstMs] = await timed(() => deploy("1", [OLD_PACKAGING]));
    expect(stages.at(-1)?.stage).toBe(DeployStage.READY);
    expect(stages[0]?.message).toMatch(/^building a Python environment for packaging==23\.2 with uv/);
    expect(await predict(stages)).toBe("23.2");
    expect(venvPackagingVersion()).not.toBe("23.2");
    const [logs] = (await client.getLogs({ modelName: "pkg-version", modelVersion: "1" })).logs;
    expect(logs?.lines.some((l) => l.includes("the environment built for the model's packages (packaging==23.2"))).toBe(true);

    const [again, secondMs] = await timed(() => deploy("2", [OLD_PACKAGING]));
    expect(again[0]?.message).toMatch(/^using the cached Python environment [0-9a-f]{12} \(packaging==23\.2\)/);
    expect(await predict(again)).toBe("23.2");
    expect(manager.pythonEnvironments?.builds).toBe(1);
    console.log(`deploy with an environment build ${firstMs.toFixed(0)} ms; the same packages again ${secondMs.toFixed(0)} ms`);
  }, 240_000);

  it("refuses a deploy whose package cannot be resolved, fast, naming it, with nothing registered", async () => {
    const started = performance.now();
    const err = await failure(deploy("3", [MISSING]));
    const seconds = (performance.now() - started) / 1000;
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/the package no-such-package-clipper==1\.0 cannot be installed: error: .*not found in the package registry/);
    expect(seconds).toBeLessThan(30);
    expect(fakeRegistry.models.has("pkg-version:3")).toBe(false);
  }, 60_000);

  it("refuses a package that is an installer option", async () => {
    const err = await failure(deploy("4", ["--index-url=http://127.0.0.1:1/simple"]));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^model\.runtime\.python_closure\.packages\[0\] must be a requirement/);
  });
});
