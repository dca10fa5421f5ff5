import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../../gen/clipper/model/v1/model_service_pb.js";
import { ModelRuntimeSchema, type Replica, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { createGrpcTransport, createLogger, type GrpcTransport } from "../../shared/index.js";
import { buildRuntimeImage, containersLabelled, PodmanService, podman, podmanTestGate } from "../testing/podman-engine.js";
import { CONTAINER_LABELS, ContainerEngineBackend, type ContainerEngineBackendOptions } from "./container-engine-backend.js";
import { DockerEngineClient } from "./docker-engine-client.js";
import type { ReplicaSpec } from "./replica-backend.js";

const repoRoot = path.resolve(import.meta.dirname, "..", "..", "..");
const venvPython = path.join(repoRoot, ".venv", "bin", "python");
const gate = podmanTestGate();
const MiB = 1024 * 1024;

/** Closures pickled by the SDK (as deploy_python_closure does), one artifact each; prints `name digest` lines. */
const closures = `
import hashlib, os, sys
sys.path.insert(0, ${JSON.stringify(path.join(repoRoot, "sdk", "python", "src"))})
from clipper_runtime.artifact import dump_artifact

# Each line in one write: Podman 4.3's logs API drops the pieces of a line written in several (docs/containers.md).
def summing(xs):
    sys.stdout.write(f"summing {len(xs)} inputs\\n")
    return [str(sum(x)) for x in xs]

def hog(xs):
    # Writes every page of a block of xs[0][0] MiB: past the container's limit, the kernel's OOM killer ends it.
    block = b"x" * (int(xs[0][0]) << 20)
    return [str(len(block) >> 20)]

def crash(xs):
    if xs[0][0] < 0:
        sys.stdout.write("crashing on purpose\\n")
        os._exit(7)
    return ["alive"]

for name, fn in (("summing", summing), ("hog", hog), ("crash", crash)):
    data = dump_artifact(fn)
    digest = hashlib.sha256(data).hexdigest()
    folder = os.path.join(sys.argv[1], "artifacts", "sha256")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, digest), "wb") as f:
        f.write(data)
    print(name, digest)
`;

describe.skipIf(!gate.run)("ContainerEngineBackend on Podman's Docker-compatible API", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-containers-"));
  const clusterName = `test-${process.pid}`;
  const selector = [`${CONTAINER_LABELS.managedBy}=clipper`, `${CONTAINER_LABELS.cluster}=${clusterName}`];
  const logger = createLogger({ service: "container-backend-test", level: "silent" });
  const digests = new Map<string, string>();
  const transports: GrpcTransport[] = [];
  const backends: ContainerEngineBackend[] = [];
  let service: PodmanService | undefined;
  let engine: DockerEngineClient;
  let image: string;

  const backend = (overrides: Partial<ContainerEngineBackendOptions> = {}) => {
    if (service === undefined) throw new Error("podman system service is not running");
    const b = new ContainerEngineBackend({
      socketPath: service.socketPath,
      image,
      clusterName,
      dataDir,
      logger,
      defaultResources: { memoryBytes: 256 * MiB, nanoCpus: 500_000_000, pidsLimit: 256 },
      // The hog gets less memory than the block it is asked to write.
      resources: (spec) => (spec.modelName === "hog" ? { memoryBytes: 160 * MiB } : undefined),
      healthIntervalMs: 200,
      stopGraceMs: 2000,
      startTimeoutMs: 60_000,
      restartPolicy: { initialDelayMs: 200, maxDelayMs: 2000, stableAfterMs: 60_000, maxStartFailures: 3 },
      ...overrides,
    });
    backends.push(b);
    return b;
  };
  const closure = (modelName: string): ReplicaSpec => ({
    modelName,
    modelVersion: "1",
    inputType: InputType.DOUBLES,
    runtime: create(ModelRuntimeSchema, { kind: { case: "pythonClosure", value: { artifactDigest: digests.get(modelName) ?? "", interpreter: venvPython } } }),
  });
  const until = async <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 90_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const replica = (b: ContainerEngineBackend, id: string) => b.replicas().find((r) => r.id === id);
  const ready = (b: ContainerEngineBackend, id: string, restarts = 0) =>
    until(`replica ${id} READY after ${restarts} restarts`, () => {
      const r = replica(b, id);
      if (r?.state === ReplicaState.FAILED) throw new Error(`replica ${id} FAILED: ${r.message}`);
      return r?.state === ReplicaState.READY && r.restarts === restarts ? r : undefined;
    });
  const predict = async (r: Replica | undefined, doubles: number[]): Promise<string | undefined> => {
    const t = createGrpcTransport({ address: r?.endpoint ?? "" });
    transports.push(t);
    const res = await createClient(ModelService, t).predict({ inputs: { type: InputType.DOUBLES, lengths: [doubles.length], doubles } }, { timeoutMs: 20_000 });
    return res.outputs[0]?.result.value;
  };
  const logText = (b: ContainerEngineBackend, id: string) => (b.logs(id, 1000) ?? []).map((l) => `${l.stream} ${l.text}`);

  beforeAll(async () => {
    if (gate.missing.length > 0)
      throw new Error(`CLIPPER_PODMAN_TESTS=1, but ${gate.missing.join(", ")} is not installed (apt-get install -y podman runc debootstrap)`);
    image = await buildRuntimeImage();
    service = await PodmanService.start();
    engine = new DockerEngineClient({ socketPath: service.socketPath });
    const out = execFileSync(venvPython, ["-c", closures, dataDir], { encoding: "utf8" });
    for (const line of out.trim().split("\n")) {
      const [name, digest] = line.split(" ");
      if (name !== undefined && digest !== undefined) digests.set(name, digest);
    }
  }, 25 * 60_000);

  afterAll(async () => {
    for (const t of transports) t.close();
    for (const b of backends) await b.close();
    // Whatever a failed test left: this cluster's containers only.
    for (const id of await containersLabelled(selector).catch(() => [])) await engine?.removeContainer(id);
    await service?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }, 120_000);

  it("the engine is Podman on runc, and a container without explicit ulimits cannot start (why the backend sets them)", async () => {
    const version = await engine.version();
    expect(version.Components?.some((c) => c.Name.toLowerCase().includes("podman"))).toBe(true);
    expect((await podman(["info", "--format", "{{.Host.OCIRuntime.Name}}"])).trim()).toBe("runc");
    // Podman's default nproc ulimit is above what root without CAP_SYS_RESOURCE may set.
    const bare = await podman(["run", "--rm", "--network", "host", image, "true"]).then(
      () => "started",
      (err: { stderr?: string }) => err.stderr ?? String(err),
    );
    const limited = await podman(["run", "--rm", "--network", "host", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", image, "true"]).then(
      () => "started",
      (err: { stderr?: string }) => err.stderr ?? String(err),
    );
    expect(limited).toBe("started");
    expect(bare).toMatch(/rlimit|ulimit|operation not permitted/i);
  }, 120_000);

  it("runs a python closure in a container of the image, with its limits and labels, and answers predictions over gRPC", async () => {
    const b = backend();
    const started = b.start(closure("summing"));
    expect(started.state).toBe(ReplicaState.STARTING);
    const r = await ready(b, started.id);
    expect(r.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await predict(r, [1, 2, 3])).toBe("6.0");
    const inspect = await engine.inspectContainer(b.containerId(r.id) ?? "");
    expect(inspect.HostConfig.NetworkMode).toBe("host");
    expect(inspect.HostConfig.Memory).toBe(256 * MiB);
    expect(inspect.HostConfig.NanoCpus).toBe(500_000_000);
    expect(inspect.HostConfig.PidsLimit).toBe(256);
    expect(inspect.Config.Labels?.[CONTAINER_LABELS.replica]).toBe(r.id);
    expect(inspect.Config.Labels?.[CONTAINER_LABELS.model]).toBe("summing");
    expect(inspect.Config.Labels?.[CONTAINER_LABELS.cluster]).toBe(clusterName);
    expect((await podman(["inspect", "--format", "{{.OCIRuntime}}", inspect.Id])).trim()).toBe("runc");
    // The artifact store is mounted read-only.
    const write = await podman(["exec", inspect.Id, "sh", "-c", "touch /var/lib/clipper/artifacts/x 2>&1 || true"]);
    expect(write).toMatch(/read-only/i);
    // Its output, from the engine's logs API: the runtime's own line, the closure's print, the manager's lines.
    await until("the closure's output in the log", () => (logText(b, r.id).some((l) => l === "stdout summing 1 inputs") ? true : undefined), 20_000);
    const logs = logText(b, r.id);
    expect(logs).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^manager starting container clipper-${clusterName}-summing-1-${r.id}-0 from ${image}: python3 -m clipper_runtime.closure_runner on port \\d+$`,
        ),
      ),
    );
    expect(logs).toContain("manager limits: memory 256 MiB, cpus 0.5, pids 256, nofile/nproc 4096");
  }, 180_000);

  it("enforces the CPU limit: busy processes in the container get half a core between them, throttled by the kernel", async () => {
    const b = backends[0]!;
    const id = b.replicas().find((r) => r.modelName === "summing")?.id ?? "";
    const container = b.containerId(id) ?? "";
    // cgroup v1 here: the container's own cpu controller, as seen from inside it.
    const out = await podman([
      "exec",
      container,
      "python3",
      "-c",
      [
        "import time, os",
        "d = '/sys/fs/cgroup/cpu,cpuacct' if os.path.isdir('/sys/fs/cgroup/cpu,cpuacct') else '/sys/fs/cgroup/cpu'",
        "quota = open(d + '/cpu.cfs_quota_us').read().strip(); period = open(d + '/cpu.cfs_period_us').read().strip()",
        "acct = '/sys/fs/cgroup/cpuacct/cpuacct.usage' if os.path.exists('/sys/fs/cgroup/cpuacct/cpuacct.usage') else d + '/cpuacct.usage'",
        "throttled = lambda: int(dict(l.split() for l in open(d + '/cpu.stat'))['nr_throttled'])",
        "n0 = throttled(); t0 = time.time(); u0 = int(open(acct).read())",
        // Busy for 2 s and until the kernel has throttled the container (on a machine busy with other work the
        // four may get less than half a core for a while, and then are not throttled), within 20 s.
        "kids = []",
        "for _ in range(4):",
        "    pid = os.fork()",
        "    if pid == 0:",
        "        while (throttled() == n0 or time.time() - t0 < 2) and time.time() - t0 < 20: pass",
        "        os._exit(0)",
        "    kids.append(pid)",
        "for k in kids: os.waitpid(k, 0)",
        "used = (int(open(acct).read()) - u0) / 1e9 / (time.time() - t0)",
        "stat = {'nr_throttled': throttled() - n0}",
        "print(quota, period, stat['nr_throttled'], round(used, 2))",
      ].join("\n"),
    ]);
    const [quota, period, throttled, share] = out.trim().split(" ").map(Number);
    expect(quota! / period!).toBe(0.5);
    expect(throttled).toBeGreaterThan(0);
    // Four busy processes could use both cores; the whole container gets at most about half of one (slack for the accounting).
    expect(share).toBeLessThan(0.65);
  }, 120_000);

  it("a replica that allocates past its memory limit is killed by the OOM killer, reported so, and restarted; the others keep serving", async () => {
    const b = backends[0]!;
    const sum = b.replicas().find((r) => r.modelName === "summing")!;
    const hog = await ready(b, b.start(closure("hog")).id);
    expect(await predict(hog, [8])).toBe("8");
    const firstContainer = b.containerId(hog.id);
    const messages: string[] = [];
    const off = b.onChange((r) => {
      if (r.id === hog.id) messages.push(r.message);
    });
    const answer = await predict(hog, [400]).then(
      (v) => `answered ${v}`,
      (err: unknown) => String(err),
    );
    expect(answer).not.toMatch(/^answered/);
    // Meanwhile the other model answers.
    expect(await predict(sum, [2, 2])).toBe("4.0");
    const again = await ready(b, hog.id, 1);
    off();
    expect(messages).toContainEqual(
      expect.stringMatching(
        /^killed by the kernel's OOM killer: out of memory \(memory limit 160 MiB\); exit code 137( \(from the kernel's log: the engine did not record it\))?; restarting in \d+ ms$/,
      ),
    );
    expect(again.message).toMatch(/^ready; restarted after: killed by the kernel's OOM killer/);
    expect(b.containerId(hog.id)).not.toBe(firstContainer);
    expect(logText(b, hog.id).some((l) => l.startsWith("manager killed by the kernel's OOM killer"))).toBe(true);
    expect(await predict(again, [8])).toBe("8");
    expect(await predict(sum, [1, 1])).toBe("2.0");
    // The killed run's container is removed; only the new one is left.
    expect(await containersLabelled([...selector, `${CONTAINER_LABELS.replica}=${hog.id}`])).toEqual([b.containerId(hog.id)]);
  }, 240_000);

  it("restarts a replica whose process exits, in a new container, with its last output in the log", async () => {
    const b = backends[0]!;
    const crash = await ready(b, b.start(closure("crash")).id);
    expect(await predict(crash, [1])).toBe("alive");
    const first = b.containerId(crash.id);
    await predict(crash, [-1]).catch(() => undefined);
    const again = await ready(b, crash.id, 1);
    expect(again.message).toBe("ready; restarted after: exited with code 7");
    expect(b.containerId(crash.id)).not.toBe(first);
    const logs = logText(b, crash.id);
    expect(logs).toContain("stdout crashing on purpose");
    expect(logs).toContain("manager exited with code 7");
    expect(await predict(again, [1])).toBe("alive");
  }, 180_000);

  it("refuses, as FAILED with the reason, a runtime the image does not have", async () => {
    const b = backends[0]!;
    const started = b.start({
      modelName: "node-model",
      modelVersion: "1",
      inputType: InputType.DOUBLES,
      runtime: create(ModelRuntimeSchema, { kind: { case: "nodeModule", value: { modulePath: "/srv/model.ts" } } }),
    });
    const failed = await until("FAILED", () => (replica(b, started.id)?.state === ReplicaState.FAILED ? replica(b, started.id) : undefined), 10_000);
    expect(failed.message).toMatch(/^cannot launch: node_module models do not run in the container backend's image/);
    await b.stop(started.id);
  });

  it("a replica that exits at once is FAILED after its start failures, quoting what it wrote before the logs were followed", async () => {
    const b = backends[0]!;
    // An artifact not in the store: the runner says so on stderr and exits.
    const digest = createHash("sha256").update("an artifact never uploaded").digest("hex");
    const started = b.start({
      modelName: "broken",
      modelVersion: "1",
      inputType: InputType.DOUBLES,
      runtime: create(ModelRuntimeSchema, { kind: { case: "pythonClosure", value: { artifactDigest: digest, interpreter: "" } } }),
    });
    const failed = await until("FAILED", () => (replica(b, started.id)?.state === ReplicaState.FAILED ? replica(b, started.id) : undefined), 60_000);
    expect(failed.message).toMatch(/^exited with code 1; it stopped 3 times in a row before becoming ready; last log lines:/);
    expect(failed.message).toContain("stderr closure_runner: cannot read the closure artifact /var/lib/clipper/artifacts/sha256/");
    await b.stop(started.id);
    expect(await containersLabelled([...selector, `${CONTAINER_LABELS.replica}=${started.id}`])).toEqual([]);
  }, 120_000);

  it("a restarted container-manager adopts the running containers (no duplicates) and removes this cluster's leftovers only", async () => {
    const first = backends[0]!;
    const before = first.replicas().sort((x, y) => x.id.localeCompare(y.id));
    expect(before.map((r) => r.modelName).sort()).toEqual(["crash", "hog", "summing"]);
    const containersBefore = (await containersLabelled(selector)).sort();
    expect(containersBefore).toHaveLength(3);
    // A leftover of this cluster that is not running (it never started), and a container of another cluster.
    const stale = await engine.createContainer(`clipper-${clusterName}-stale`, {
      Image: image,
      Entrypoint: ["true"],
      Cmd: [],
      Env: [],
      Labels: { [CONTAINER_LABELS.managedBy]: "clipper", [CONTAINER_LABELS.cluster]: clusterName, [CONTAINER_LABELS.replica]: "deadbeef" },
      WorkingDir: "/",
      HostConfig: { NetworkMode: "host", Ulimits: [], Binds: [] },
    });
    const other = await engine.createContainer(`clipper-other-${process.pid}`, {
      Image: image,
      Entrypoint: ["true"],
      Cmd: [],
      Env: [],
      Labels: { [CONTAINER_LABELS.managedBy]: "clipper", [CONTAINER_LABELS.cluster]: `other-${process.pid}`, [CONTAINER_LABELS.replica]: "cafebabe" },
      WorkingDir: "/",
      HostConfig: { NetworkMode: "host", Ulimits: [], Binds: [] },
    });
    try {
      await first.release();
      const second = backend();
      const result = await second.adoptRunningContainers();
      expect(result.adopted.sort()).toEqual(before.map((r) => r.id));
      expect(result.removed).toEqual([stale.Id]);
      const after = second.replicas().sort((x, y) => x.id.localeCompare(y.id));
      expect(after.map((r) => [r.id, r.endpoint, r.restarts, r.state])).toEqual(before.map((r) => [r.id, r.endpoint, r.restarts, ReplicaState.READY]));
      expect((await containersLabelled(selector)).sort()).toEqual(containersBefore);
      expect(await containersLabelled([`${CONTAINER_LABELS.cluster}=other-${process.pid}`])).toEqual([other.Id]);
      const sum = after.find((r) => r.modelName === "summing");
      expect(await predict(sum, [5, 5])).toBe("10.0");
      // Its earlier output came along from the engine's log.
      await until(
        "the earlier output in the adopted replica's log",
        () => (logText(second, sum?.id ?? "").includes("stdout summing 1 inputs") ? true : undefined),
        10_000,
      );
      // Followed as its own: a crash is restarted by the adopting manager.
      const crash = after.find((r) => r.modelName === "crash")!;
      await predict(crash, [-1]).catch(() => undefined);
      await ready(second, crash.id, 2);
    } finally {
      await engine.removeContainer(other.Id);
    }
  }, 240_000);

  it("stop removes a replica's container; close leaves nothing of this cluster behind", async () => {
    const b = backends.at(-1)!;
    const hog = b.replicas().find((r) => r.modelName === "hog")!;
    const container = b.containerId(hog.id) ?? "";
    const removed: string[] = [];
    b.onChange((r, gone) => {
      if (gone) removed.push(r.id);
    });
    await b.stop(hog.id);
    expect(removed).toEqual([hog.id]);
    expect(await containersLabelled([`${CONTAINER_LABELS.replica}=${hog.id}`])).toEqual([]);
    expect((await podman(["ps", "-a", "--no-trunc", "--format", "{{.ID}}"])).split("\n")).not.toContain(container);
    await b.close();
    expect(b.replicas()).toEqual([]);
    expect(await containersLabelled(selector)).toEqual([]);
  }, 120_000);
});
