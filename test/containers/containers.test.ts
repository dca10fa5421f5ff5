import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import { buildRuntimeImage, containersLabelled, PodmanService, podmanTestGate } from "../../services/container-manager/testing/podman-engine.js";
import { postJson, repoRoot, TestSystem, waitFor } from "../system.js";

const gate = podmanTestGate();
const venvPython = join(repoRoot, ".venv", "bin", "python");

/** The quickstart's closure, pickled by the SDK as deploy_python_closure does. */
const sumClosure = [
  "import sys",
  `sys.path.insert(0, ${JSON.stringify(join(repoRoot, "sdk", "python", "src"))})`,
  "from clipper_runtime.artifact import dump_artifact",
  "sys.stdout.buffer.write(dump_artifact(lambda xs: [str(sum(x)) for x in xs]))",
].join("\n");

describe.skipIf(!gate.run)("end to end with --backend docker: the services as processes, the model in a Podman container", () => {
  const clusterName = `e2e-${process.pid}`;
  const selector = ["app.kubernetes.io/managed-by=clipper", `clipper.ai/cluster=${clusterName}`];
  let service: PodmanService | undefined;
  let system: TestSystem | undefined;

  beforeAll(async () => {
    if (gate.missing.length > 0)
      throw new Error(`CLIPPER_PODMAN_TESTS=1, but ${gate.missing.join(", ")} is not installed (apt-get install -y podman runc debootstrap)`);
    const image = await buildRuntimeImage();
    service = await PodmanService.start();
    system = new TestSystem({
      args: {
        "container-manager": [
          "--backend",
          "docker",
          "--docker-socket",
          service.socketPath,
          "--image",
          image,
          "--cluster-name",
          clusterName,
          "--replica-memory-limit-bytes",
          String(256 * 1024 * 1024),
          "--replica-cpus",
          "0.5",
          "--stop-grace-ms",
          "2000",
        ],
      },
    });
    await system.start();
    const artifact = execFileSync(venvPython, ["-c", sumClosure]);
    const digest = createHash("sha256").update(artifact).digest("hex");
    async function* parts() {
      yield { part: { case: "header" as const, value: { sizeBytes: BigInt(artifact.length), sha256: digest } } };
      yield { part: { case: "chunk" as const, value: artifact } };
    }
    await system.containerManager().uploadArtifact(parts());
    await system.deployApp(
      "hello-world",
      {
        name: "sum-model",
        version: "1",
        inputType: InputType.DOUBLES,
        desiredReplicas: 1,
        runtime: { kind: { case: "pythonClosure", value: { artifactDigest: digest } } },
      },
      { timeoutSeconds: 120, sloMicros: 5_000_000n },
    );
  }, 25 * 60_000);

  afterAll(async () => {
    await system?.stop();
    await service?.stop();
  }, 120_000);

  const predict = () =>
    waitFor("a model answer through the gateway", async () => {
      const r = await postJson(`${system!.gatewayUrl}/hello-world/predict`, { input: [1, 2, 3] });
      return r.json.default === false ? r : undefined;
    });

  it("answers the quickstart query over REST from a replica in a container", async () => {
    const res = await predict();
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ output: 6, default: false, models: ["sum-model:1"] });
    expect(await containersLabelled(selector)).toHaveLength(1);
    const logs = await system!.containerManager().getLogs({ modelName: "sum-model" });
    expect(logs.logs[0]?.lines.some((l) => l.includes("manager limits: memory 256 MiB, cpus 0.5"))).toBe(true);
  });

  it("a container-manager killed and started again adopts the container: same replica, no second container", async () => {
    const before = (await system!.containerManager().listModelReplicas({ modelName: "sum-model" })).replicas;
    const containers = await containersLabelled(selector);
    await system!.stopService("container-manager", "SIGKILL");
    await system!.startService("container-manager");
    const after = await waitFor("the adopted replica READY", async () => {
      const replicas = (await system!.containerManager().listModelReplicas({ modelName: "sum-model" })).replicas;
      return replicas.length === 1 && replicas[0]?.state === ReplicaState.READY ? replicas : undefined;
    });
    expect(after.map((r) => [r.id, r.endpoint])).toEqual(before.map((r) => [r.id, r.endpoint]));
    expect(await containersLabelled(selector)).toEqual(containers);
    expect((await predict()).json).toMatchObject({ output: 6, default: false });
  }, 120_000);

  it("stopping the system (SIGTERM to the container-manager) removes its containers", async () => {
    await system!.stopService("container-manager");
    expect(await containersLabelled(selector)).toEqual([]);
  }, 60_000);
});
