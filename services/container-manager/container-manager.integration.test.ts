import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { ContainerManagerService, type DeployModelResponse, DeployStage } from "../../gen/clipper/v1/container_manager_service_pb.js";
import type { ModelRuntime, Replica } from "../../gen/clipper/v1/resources_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, createGrpcTransport, createLogger, type GrpcTransport, type RunningGrpcServer } from "../shared/index.js";
import { type RunningContainerManager, startContainerManager } from "./manager.js";
import { FakeRegistry } from "./testing/fake-registry.js";

const repoRoot = path.resolve(import.meta.dirname, "..", "..");
const sumModule = path.join(repoRoot, "sdk", "typescript", "examples", "sum-model.ts");
const slowModule = path.join(repoRoot, "sdk", "typescript", "examples", "slow-model.ts");
const venvPython = path.join(repoRoot, ".venv", "bin", "python");
type RuntimeInit = { kind: ModelRuntime["kind"] };

describe("container-manager with real replica processes", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-cm-"));
  const fakeRegistry = new FakeRegistry();
  const seenPids = new Set<number>();
  let registryServer: RunningGrpcServer;
  let manager: RunningContainerManager;
  let transport: GrpcTransport;
  let client: ReturnType<typeof createClient<typeof ContainerManagerService>>;
  const transports: GrpcTransport[] = [];

  beforeAll(async () => {
    registryServer = await fakeRegistry.start();
    manager = await startContainerManager({
      host: "127.0.0.1",
      port: 0,
      registry: registryServer.address,
      dataDir,
      repoRoot,
      python: venvPython,
      logger: createLogger({ service: "container-manager-test", level: "silent" }),
      maxArtifactBytes: 1024 * 1024,
      deployTimeoutMs: 30_000,
      backend: {
        healthIntervalMs: 100,
        restartAfterChecks: 4,
        stopGraceMs: 3000,
        restartPolicy: { initialDelayMs: 100, maxDelayMs: 1000, stableAfterMs: 60_000, maxStartFailures: 3 },
      },
    });
    manager.backend.onChange((r) => {
      const pid = manager.backend.pid(r.id);
      if (pid !== undefined) seenPids.add(pid);
    });
    transport = createGrpcTransport({ address: manager.server.address });
    client = createClient(ContainerManagerService, transport);
  });

  afterAll(async () => {
    transport?.close();
    for (const t of transports) t.close();
    await manager?.close();
    await registryServer?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function deploy(name: string, version: string, runtime: RuntimeInit, desiredReplicas = 1, timeoutSeconds = 0): Promise<DeployModelResponse[]> {
    const seen: DeployModelResponse[] = [];
    for await (const res of client.deployModel({ model: { name, version, inputType: InputType.DOUBLES, runtime, desiredReplicas }, timeoutSeconds }))
      seen.push(res);
    return seen;
  }

  async function predict(replica: Replica | undefined, doubles: number[]): Promise<string | undefined> {
    const t = createGrpcTransport({ address: replica?.endpoint ?? "" });
    transports.push(t);
    const res = await createClient(ModelService, t).predict({ inputs: { type: InputType.DOUBLES, lengths: [doubles.length], doubles } });
    return res.outputs[0]?.result.value;
  }

  async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const value = await probe();
      if (value !== undefined) return value;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  const nodeModule = (modulePath: string): RuntimeInit => ({ kind: { case: "nodeModule", value: { modulePath } } }) as RuntimeInit;
  const command = (argv: string[], env: Record<string, string> = {}): RuntimeInit =>
    ({ kind: { case: "command", value: { argv, env, workingDir: repoRoot } } }) as RuntimeInit;

  it("deploys a node_module model: REGISTERED, STARTING, READY, and the replica answers", async () => {
    const stages = await deploy("sum", "1", nodeModule(sumModule));
    expect(stages[0]?.stage).toBe(DeployStage.REGISTERED);
    expect(stages.some((s) => s.stage === DeployStage.STARTING)).toBe(true);
    const last = stages.at(-1);
    expect(last?.stage).toBe(DeployStage.READY);
    expect(last?.replicas.map((r) => r.state)).toEqual([ReplicaState.READY]);
    expect(await predict(last?.replicas[0], [1.1, 2.2, 3.3])).toBe("6.6");
    expect(fakeRegistry.models.get("sum:1")?.desiredReplicas).toBe(1);
    const report = await until("a READY report", async () =>
      fakeRegistry.latestReport("sum", "1")?.replicas[0]?.state === ReplicaState.READY ? true : undefined,
    );
    expect(report).toBe(true);
  });

  it("serves the replica's captured output through GetLogs", async () => {
    const res = await client.getLogs({ modelName: "sum" });
    expect(res.logs).toHaveLength(1);
    const lines = res.logs[0]?.lines ?? [];
    expect(lines.some((l) => /^\d{4}-\d\d-\d\dT.* stdout \{"msg":"listening","port":\d+/.test(l))).toBe(true);
    const files = fs.readdirSync(path.join(dataDir, "logs"));
    expect(files.some((f) => f.startsWith(`sum-1-${res.logs[0]?.replicaId}`))).toBe(true);
    const err = (await client.getLogs({ modelName: "sum", replicaId: "nope" }).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.NotFound);
  });

  it("restarts a replica killed with SIGKILL until it is READY again", async () => {
    const [before] = (await client.listModelReplicas({ modelName: "sum" })).replicas;
    const pid = manager.backend.pid(before?.id ?? "");
    expect(pid).toBeTypeOf("number");
    process.kill(pid ?? 0, "SIGKILL");
    const after = await until("the restarted replica", async () => {
      const [r] = (await client.listModelReplicas({ modelName: "sum" })).replicas;
      return r !== undefined && r.restarts === 1 && r.state === ReplicaState.READY ? r : undefined;
    });
    expect(after.id).toBe(before?.id);
    expect(manager.backend.pid(after.id)).not.toBe(pid);
    expect(await predict(after, [2, 3])).toBe("5");
  });

  it("kills and restarts a replica that stops answering its health checks (a hung process)", async () => {
    await deploy("hung", "1", nodeModule(sumModule));
    const [before] = (await client.listModelReplicas({ modelName: "hung" })).replicas;
    const pid = manager.backend.pid(before?.id ?? "") as number;
    expect(before?.state).toBe(ReplicaState.READY);
    process.kill(pid, "SIGSTOP");
    const after = await until("the hung replica restarted", async () => {
      const [r] = (await client.listModelReplicas({ modelName: "hung" })).replicas;
      return r !== undefined && r.restarts === 1 && r.state === ReplicaState.READY ? r : undefined;
    });
    expect(manager.backend.pid(after.id)).not.toBe(pid);
    expect(() => process.kill(pid, 0)).toThrow();
    expect(await predict(after, [1, 1])).toBe("2");
    const logs = await client.getLogs({ modelName: "hung", replicaId: after.id, tailLines: 50 });
    expect((logs.logs[0]?.lines ?? []).join("\n")).toMatch(/killed after 4 failed health checks in a row/);
    await client.stopModel({ name: "hung" });
  }, 30_000);

  it("fails a deploy whose model exits at once, quoting its last log lines", async () => {
    const runtime = command([process.execPath, "-e", "console.error('boom: cannot load the weights'); process.exit(3)"]);
    const err = (await deploy("crash", "1", runtime).catch((e: unknown) => e)) as ConnectError;
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("exited with code 3");
    expect(err.rawMessage).toContain("boom: cannot load the weights");
    const [replica] = (await client.listModelReplicas({ modelName: "crash" })).replicas;
    expect(replica?.state).toBe(ReplicaState.FAILED);
  });

  it("fails a deploy that is not ready in time, quoting the replica's log lines", async () => {
    const runtime = command([process.execPath, "-e", "console.log('warming up forever'); setInterval(() => {}, 1000)"]);
    const err = (await deploy("hang", "1", runtime, 1, 2).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("0 of 1 replicas ready after 2 s");
    expect(err.rawMessage).toContain("warming up forever");
    expect((await client.stopModel({ name: "hang" })).stoppedReplicas).toBe(1);
  });

  it("runs a command runtime, scales it, and stops it", async () => {
    const runtime = command([process.execPath, "--import", "tsx", path.join(repoRoot, "sdk", "typescript", "src", "runner.ts")], {
      CLIPPER_MODEL_MODULE: slowModule,
      CLIPPER_SLEEP_MS: "5",
    });
    const stages = await deploy("slow", "1", runtime);
    expect(await predict(stages.at(-1)?.replicas[0], [1, 2])).toBe("3");
    const scaled = await client.scaleModel({ name: "slow", replicas: 2 });
    expect(scaled.replicas.map((r) => r.state)).toEqual([ReplicaState.READY, ReplicaState.READY]);
    expect(new Set(scaled.replicas.map((r) => r.endpoint)).size).toBe(2);
    expect((await client.stopModel({ name: "slow" })).stoppedReplicas).toBe(2);
    expect((await client.listModelReplicas({ modelName: "slow" })).replicas).toEqual([]);
    expect(fakeRegistry.models.get("slow:1")?.desiredReplicas).toBe(0);
  });

  it("rejects bad deploy requests with a message naming the field", async () => {
    const bad = async (model: Parameters<typeof client.deployModel>[0]["model"]) => {
      const err = (await (async () => {
        for await (const _ of client.deployModel({ model })) void _;
      })().catch((e: unknown) => e)) as ConnectError;
      return `${Code[err.code]}: ${err.rawMessage}`;
    };
    expect(await bad(undefined)).toBe("InvalidArgument: model is missing");
    expect(await bad({ name: "Bad_Name", version: "1", inputType: InputType.DOUBLES, runtime: nodeModule(sumModule) })).toMatch(
      /^InvalidArgument: model name "Bad_Name" is invalid/,
    );
    expect(await bad({ name: "m", version: "1", runtime: nodeModule(sumModule) })).toMatch(/^InvalidArgument: model.input_type/);
    expect(await bad({ name: "m", version: "1", inputType: InputType.DOUBLES })).toMatch(/^InvalidArgument: model.runtime is not set/);
    expect(
      await bad({
        name: "m",
        version: "1",
        inputType: InputType.DOUBLES,
        runtime: { kind: { case: "pythonClosure", value: { artifactDigest: "0".repeat(64) } } },
      }),
    ).toMatch(/^FailedPrecondition: artifact 0{64} is not in the artifact store/);
  });

  it("stores uploaded artifacts and rejects a wrong digest", async () => {
    const data = Buffer.from("pickled closure");
    const digest = createHash("sha256").update(data).digest("hex");
    async function* parts(sha256: string) {
      yield { part: { case: "header" as const, value: { sizeBytes: BigInt(data.length), sha256 } } };
      yield { part: { case: "chunk" as const, value: data.subarray(0, 5) } };
      yield { part: { case: "chunk" as const, value: data.subarray(5) } };
    }
    const err = (await client.uploadArtifact(parts("f".repeat(64))).catch((e: unknown) => e)) as ConnectError;
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("sha256 mismatch");
    expect(fs.existsSync(path.join(dataDir, "artifacts", "sha256", digest))).toBe(false);
    const ok = await client.uploadArtifact(parts(digest));
    expect(ok.digest).toBe(digest);
    expect(fs.readFileSync(path.join(dataDir, "artifacts", "sha256", digest), "utf8")).toBe("pickled closure");
  });

  it.skipIf(!fs.existsSync(venvPython))("deploys an uploaded python_closure artifact with the Python SDK's runner", async () => {
    const script = [
      "import sys",
      `sys.path.insert(0, ${JSON.stringify(path.join(repoRoot, "sdk", "python", "src"))})`,
      "from clipper_runtime.artifact import dump_artifact",
      "sys.stdout.buffer.write(dump_artifact(lambda xs: [str(len(x)) for x in xs]))",
    ].join("\n");
    const artifact = execFileSync(venvPython, ["-c", script]);
    const digest = createHash("sha256").update(artifact).digest("hex");
    async function* parts() {
      yield { part: { case: "header" as const, value: { sizeBytes: BigInt(artifact.length), sha256: digest } } };
      yield { part: { case: "chunk" as const, value: artifact } };
    }
    expect((await client.uploadArtifact(parts())).digest).toBe(digest);
    const stages = await deploy("py-len", "1", { kind: { case: "pythonClosure", value: { artifactDigest: digest } } } as RuntimeInit);
    expect(await predict(stages.at(-1)?.replicas[0], [1, 2, 3])).toBe("3");
    expect((await client.stopModel({ name: "py-len" })).stoppedReplicas).toBe(1);
  });

  it("leaves no replica process behind when it closes", async () => {
    expect(seenPids.size).toBeGreaterThan(0);
    await manager.close();
    for (const pid of seenPids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
