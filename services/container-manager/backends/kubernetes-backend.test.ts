import { create } from "@bufbuild/protobuf";
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema } from "../../../gen/clipper/v1/resources_pb.js";
import {
  artifactDigestOf,
  CRASH_LOOP_FAILED_AFTER_RESTARTS,
  DEFAULT_KUBERNETES_OPTIONS,
  defaultCommand,
  deploymentName,
  labelValue,
  parseNodeSelector,
  parseTolerations,
  podProblem,
  withArtifactFetch,
} from "./kubernetes-backend.js";

/** A version of model "m" with this runtime. */
const spec = (runtime: Parameters<typeof create<typeof ModelRuntimeSchema>>[1]) => ({
  modelName: "m",
  modelVersion: "1",
  inputType: InputType.DOUBLES,
  runtime: create(ModelRuntimeSchema, runtime),
});

describe("kubernetes backend naming", () => {
  it("makes DNS-safe Deployment names, short enough for their pods' names, distinct for names that sanitize alike", () => {
    const a = deploymentName("prod", "My_Model", "v1.2");
    expect(a).toMatch(/^clipper-prod-my-model-v1-2-[0-9a-f]{8}$/);
    expect(deploymentName("prod", "my-model", "v1-2")).not.toBe(a);
    const long = deploymentName("c".repeat(40), "m".repeat(100), "v".repeat(100));
    expect(long.length).toBeLessThanOrEqual(46);
    expect(long).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    // <deployment>-<pod-template-hash, up to 10>-<5>
    expect(long.length + 1 + 10 + 1 + 5).toBeLessThanOrEqual(63);
    expect(deploymentName("prod", "m", "1")).toBe(deploymentName("prod", "m", "1"));
  });

  it("sanitizes label values: allowed characters, 63 at most, alphanumeric at both ends", () => {
    expect(labelValue("sum")).toBe("sum");
    expect(labelValue("a b/c")).toBe("a-b-c");
    expect(labelValue("-x-")).toBe("x");
    expect(labelValue("v".repeat(80))).toHaveLength(63);
  });
});

describe("podProblem", () => {
  const pod = (status: NonNullable<V1Pod["status"]>): V1Pod => ({ status });
  it("names what will not fix itself", () => {
    expect(
      podProblem(
        pod({ phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes: Insufficient cpu" }] }),
      ),
    ).toBe("unschedulable: 0/1 nodes: Insufficient cpu");
    expect(
      podProblem(
        pod({
          phase: "Pending",
          containerStatuses: [
            {
              name: "model",
              image: "x",
              imageID: "",
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: "ImagePullBackOff", message: "no such image" } },
            },
          ],
        }),
      ),
    ).toBe("container model ImagePullBackOff: no such image");
    expect(podProblem(pod({ phase: "Failed", reason: "Evicted", message: "low memory" }))).toBe("pod failed: Evicted low memory");
  });
  it("a crash loop is FAILED only after CRASH_LOOP_FAILED_AFTER_RESTARTS restarts: the kubelet says CrashLoopBackOff from the first crash", () => {
    const crashed = (restartCount: number) =>
      pod({
        phase: "Running",
        containerStatuses: [
          { name: "model", image: "x", imageID: "", ready: false, restartCount, state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 10s" } } },
        ],
      });
    expect(podProblem(crashed(1))).toBeUndefined();
    expect(podProblem(crashed(CRASH_LOOP_FAILED_AFTER_RESTARTS - 1))).toBeUndefined();
    expect(podProblem(crashed(CRASH_LOOP_FAILED_AFTER_RESTARTS))).toBe("container model CrashLoopBackOff: back-off 10s (3 restarts)");
  });
  it("a crash loop's reason carries the container's last words (a failed artifact fetch says why)", () => {
    const last = "clipper artifact fetch: sha256 mismatch: expected aa, the downloaded content's is bb; refusing to load it";
    expect(
      podProblem(
        pod({
          phase: "Running",
          containerStatuses: [
            {
              name: "model",
              image: "x",
              imageID: "",
              ready: false,
              restartCount: CRASH_LOOP_FAILED_AFTER_RESTARTS,
              state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 4s" } },
              lastState: { terminated: { exitCode: 1, reason: "Error", message: `${last}\n` } },
            },
          ],
        }),
      ),
    ).toBe(`container model CrashLoopBackOff: back-off 4s (3 restarts); last exit 1: ${last}`);
  });
  it("is undefined for a pod on its way", () => {
    expect(podProblem(pod({ phase: "Pending" }))).toBeUndefined();
    expect(
      podProblem(
        pod({
          phase: "Pending",
          containerStatuses: [{ name: "model", image: "x", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } } }],
        }),
      ),
    ).toBeUndefined();
  });
});

describe("the model spec's own command, args, env and working directory in the pod", () => {
  const paths = DEFAULT_KUBERNETES_OPTIONS.imagePaths;
  it("a command runtime: its argv, env and working_dir; the CLIPPER_MODEL_* variables over its env; nothing of the container-manager's", () => {
    const run = defaultCommand(
      spec({
        kind: { case: "command", value: { argv: ["/srv/model", "--threads", "2"], env: { MODEL_MODE: "fast", CLIPPER_MODEL_PORT: "1" }, workingDir: "/srv" } },
      }),
      7000,
      paths,
    );
    expect(run.command).toEqual(["/srv/model"]);
    expect(run.args).toEqual(["--threads", "2"]);
    expect(run.env).toEqual({
      MODEL_MODE: "fast",
      CLIPPER_MODEL_PORT: "7000",
      CLIPPER_MODEL_NAME: "m",
      CLIPPER_MODEL_VERSION: "1",
      CLIPPER_INPUT_TYPE: "doubles",
    });
    expect(run.workingDir).toBe("/srv");
  });
  it("no working_dir: the image's data dir, as the local launch; a Java model's JVM options are its args", () => {
    expect(defaultCommand(spec({ kind: { case: "command", value: { argv: ["/srv/model"] } } }), 7000, paths).workingDir).toBe("/var/lib/clipper");
    const java = defaultCommand(
      spec({ kind: { case: "javaClass", value: { jarDigest: "a".repeat(64), className: "com.example.M", jvmOptions: ["-Xmx256m"] } } }),
      7000,
      { ...paths, java: "java", javaSdkJar: "/opt/clipper/sdk.jar" },
    );
    expect(java.args[0]).toBe("-Xmx256m");
    expect(java.args).toContain("com.example.M");
  });
});

describe("the artifact fetch in front of the runtime", () => {
  const paths = DEFAULT_KUBERNETES_OPTIONS.imagePaths;
  const digest = "ab".repeat(32);
  const o = { artifactsUrl: "http://clipper-container-manager:1342/", imagePaths: paths };
  it("a closure: the fetch program runs first, told the URL, digest and the path the runtime reads, then execs the runtime", () => {
    const closure = spec({ kind: { case: "pythonClosure", value: { artifactDigest: digest } } });
    const run = withArtifactFetch(closure, defaultCommand(closure, 7000, paths), o);
    expect(run.command).toEqual(["python3", "-m", "clipper_runtime.artifact_fetch", "--", "python3"]);
    expect(run.args).toEqual(["-m", "clipper_runtime.closure_runner"]);
    expect(run.env).toMatchObject({
      CLIPPER_ARTIFACT_URL: `http://clipper-container-manager:1342/artifacts/${digest}`,
      CLIPPER_ARTIFACT_SHA256: digest,
      CLIPPER_ARTIFACT_PATH: `/var/lib/clipper/artifacts/sha256/${digest}`,
      CLIPPER_ARTIFACT: `/var/lib/clipper/artifacts/sha256/${digest}`,
      PYTHONPATH: "/opt/clipper/sdk/python/src",
    });
  });
  it("a Java jar and an R model are fetched the same way; a command or Node module loads none", () => {
    expect(artifactDigestOf(spec({ kind: { case: "javaClass", value: { jarDigest: digest, className: "M" } } }))).toBe(digest);
    expect(artifactDigestOf(spec({ kind: { case: "rFunction", value: { artifactDigest: digest, format: "rds" } } }))).toBe(digest);
    const command = spec({ kind: { case: "command", value: { argv: ["/srv/model"] } } });
    expect(artifactDigestOf(command)).toBeUndefined();
    const run = defaultCommand(command, 7000, paths);
    expect(withArtifactFetch(command, run, o)).toBe(run);
  });
});

describe("--model-node-selector and --model-tolerations", () => {
  it("parses key=value lists into a nodeSelector", () => {
    expect(parseNodeSelector("clipper.ai/pool=models, kubernetes.io/arch=amd64")).toEqual({ "clipper.ai/pool": "models", "kubernetes.io/arch": "amd64" });
    expect(parseNodeSelector("")).toEqual({});
    expect(() => parseNodeSelector("pool")).toThrow('"pool" is not key=value');
    expect(() => parseNodeSelector("Bad Key=x")).toThrow(/is not a label key/);
    expect(() => parseNodeSelector("k=-x")).toThrow(/is not a label value/);
  });
  it("parses kubectl taint's syntax into tolerations", () => {
    expect(parseTolerations("clipper.ai/models=true:NoSchedule,nvidia.com/gpu:NoSchedule,dedicated")).toEqual([
      { key: "clipper.ai/models", operator: "Equal", value: "true", effect: "NoSchedule" },
      { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" },
      { key: "dedicated", operator: "Exists" },
    ]);
    expect(parseTolerations("")).toEqual([]);
    expect(() => parseTolerations("k=v:Sometimes")).toThrow(/the effect must be one of NoSchedule, PreferNoSchedule, NoExecute/);
    expect(() => parseTolerations("=v")).toThrow(/is not key\[=value\]\[:Effect\]/);
  });
});
