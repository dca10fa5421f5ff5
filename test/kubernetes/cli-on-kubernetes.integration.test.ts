/**
 * The CLI against a Clipper system on Kubernetes (`clipper --kubeconfig FILE --namespace NS --cluster NAME ...`): the
 * loopback cluster where the loopback kubelet runs every pod (system-pods-on-loopback.ts), the system applied and a
 * closure deployed with Python's KubernetesContainerManager (the documented way to start it), then `status`, `model
 * scale`, `predict` and `model list` through the CLI, which finds the services by their Services' ready pods.
 * docs/kubernetes.md, "From Python and the CLI".
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/cli.js";
import type { Output } from "../../cli/output.js";
import { repoRoot, waitFor } from "../system.js";
import { skipKubernetesTests } from "./loopback-cluster.js";
import { type SystemPodsOnLoopback, startSystemPodsOnLoopback } from "./system-pods-on-loopback.js";

const run = promisify(execFile);
const NAMESPACE = "clipper-cli";
const CLUSTER = "clik8s";
const venvPython = join(repoRoot, ".venv", "bin", "python");

class Capture implements Output {
  text = "";
  write(s: string) {
    this.text += s;
    return true;
  }
}

/** Python's KubernetesContainerManager for this namespace and cluster, running `body` with `cm` and `conn`. */
function python(system: SystemPodsOnLoopback, body: string): Promise<{ stdout: string }> {
  const script = [
    "import sys",
    "from clipper_admin import ClipperConnection, KubernetesContainerManager",
    "from clipper_admin.deployers import python as python_deployer",
    `cm = KubernetesContainerManager(namespace=${JSON.stringify(NAMESPACE)}, kubeconfig=${JSON.stringify(system.cluster.kubeconfigPath)}, cluster_name=${JSON.stringify(CLUSTER)}, kubectl=${JSON.stringify(system.cluster.binaries.kubectl)}, redis_url=${JSON.stringify(system.redis.url)}, timeout_seconds=120)`,
    "conn = ClipperConnection(cm)",
    body,
  ].join("\n");
  return run(venvPython, ["-c", script], { cwd: repoRoot, env: { ...process.env, PYTHONPATH: join(repoRoot, "sdk", "python", "src") }, timeout: 180_000 });
}

describe.skipIf(skipKubernetesTests())("the CLI against a system on Kubernetes (--kubeconfig)", () => {
  let system: SystemPodsOnLoopback;
  const log: string[] = [];
  const clipper = async (...args: string[]) => {
    const stdout = new Capture();
    const stderr = new Capture();
    const global = ["--kubeconfig", system.cluster.kubeconfigPath, "--namespace", NAMESPACE, "--cluster", CLUSTER];
    const code = await runCli([...global, ...args], { stdout, stderr, env: { ...process.env }, cwd: repoRoot, repoRoot });
    return { code, stdout: stdout.text, stderr: stderr.text };
  };
  const kubectl = async (...args: string[]) => {
    const res = await system.cluster.kubectl(args);
    if (res.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${res.stderr}`);
    return res.stdout;
  };

  beforeAll(async () => {
    const t0 = Date.now();
    system = await startSystemPodsOnLoopback({ namespace: NAMESPACE, log: (line) => log.push(`${new Date().toISOString()} ${line}`) });
    await python(
      system,
      [
        "conn.start_clipper()",
        'conn.register_application(name="hello", input_type="doubles", default_output="-1.0", slo_micros=2000000)',
        "def feature_sum(xs): return [str(sum(x)) for x in xs]",
        'python_deployer.deploy_python_closure(conn, name="sum-model", version=1, input_type="doubles", func=feature_sum)',
        'conn.link_model_to_app(app_name="hello", model_name="sum-model")',
      ].join("\n"),
    );
    console.log(`cluster up, system applied and a closure deployed from Python in ${Date.now() - t0} ms`);
  }, 240_000);

  afterAll(async () => {
    if (log.length > 0) console.log(`loopback kubelet and proxy, last lines:\n${log.slice(-30).join("\n")}`);
    await system?.stop();
  }, 90_000);

  it("status shows the system's Deployments of that cluster name, ready, with the model", async () => {
    const status = await clipper("status");
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`services (Kubernetes: namespace ${NAMESPACE}, cluster ${CLUSTER}`);
    for (const [name, ready] of [
      ["clipper-container-manager", "1/1"],
      ["clipper-gateway", "2/2"],
      ["clipper-registry", "1/1"],
      ["clipper-router", "2/2"],
    ]) {
      // Named by the cluster name (a prefix: several systems share a namespace).
      expect(status.stdout).toMatch(new RegExp(`\\s${CLUSTER}-${name}\\s+up\\s+${ready}\\s+0\\s+127\\.`));
    }
    // The model Deployment the container-manager made carries the cluster's label too.
    expect(status.stdout).toMatch(new RegExp(`clipper-${CLUSTER}-sum-model-1-\\S+\\s+up\\s+1/1`));
    expect(status.stdout).toContain("hello");
    expect(status.stdout).toContain("sum-model");
  });

  it("model scale patches the Deployment: two pods run, both READY in the registry, and predict is answered through the gateway", async () => {
    const scaled = await clipper("model", "scale", "sum-model", "--replicas", "2");
    expect(scaled.code, scaled.stderr).toBe(0);
    const pods = JSON.parse(await kubectl("-n", NAMESPACE, "get", "pods", "-l", `clipper.ai/cluster=${CLUSTER},clipper.ai/model`, "-o", "json")) as {
      items: { metadata: { deletionTimestamp?: string }; status: { podIP?: string } }[];
    };
    const running = pods.items.filter((p) => p.metadata.deletionTimestamp === undefined);
    expect(running).toHaveLength(2);
    await waitFor(
      "the model's Deployment 2/2",
      async () => /clipper-clik8s-sum-model-1-\S+\s+up\s+2\/2/.test((await clipper("status")).stdout) || undefined,
      20_000,
    );
    const status = await clipper("status");
    for (const p of running) expect(status.stdout).toContain(`${p.status.podIP}:7000`);
    expect(status.stdout.match(/READY/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    const predicted = await clipper("predict", "hello", "[1.5, 2.5]");
    expect(predicted.code, predicted.stderr).toBe(0);
    const answer = JSON.parse(predicted.stdout) as { output: unknown; default: boolean; models: string[] };
    expect(Number(answer.output)).toBe(4);
    expect(answer.default).toBe(false);
    expect(answer.models).toEqual(["sum-model:1"]);
  });

  it("refuses what acts on this machine, a bad namespace, and says when the system is not in the namespace", async () => {
    const up = await clipper("up");
    expect(up.code).toBe(1);
    expect(up.stderr).toContain("`clipper up` acts on a system on this machine");
    const stdout = new Capture();
    const stderr = new Capture();
    const bad = await runCli(["--kubeconfig", system.cluster.kubeconfigPath, "--namespace", "Bad_NS", "status"], {
      stdout,
      stderr,
      env: { ...process.env },
      cwd: repoRoot,
      repoRoot,
    });
    expect(bad).toBe(2);
    expect(stderr.text).toContain('namespace "Bad_NS" is not valid');
    const elsewhere = new Capture();
    const code = await runCli(["--kubeconfig", system.cluster.kubeconfigPath, "--namespace", "empty-ns", "model", "list"], {
      stdout: new Capture(),
      stderr: elsewhere,
      env: { ...process.env },
      cwd: repoRoot,
      repoRoot,
    });
    expect(code).toBe(1);
    expect(elsewhere.text).toContain("Service clipper-registry in namespace empty-ns has not been created: is Clipper running there?");
  });
});
