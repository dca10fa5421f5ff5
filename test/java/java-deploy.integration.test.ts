// Java models end to end: `clipper model deploy --java JAR:CLASS` into the real services (test/system.ts),
// linked to an application and queried over REST. Uses the jars sdk/java's `mvn install` built; builds nothing.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { postJson, repoRoot, TestSystem, waitFor } from "../system.js";

const target = join(repoRoot, "sdk", "java", "target");
const sdkJar = join(target, "clipper-model-sdk-0.1.0-all.jar");
const examplesJar = join(target, "clipper-model-sdk-0.1.0-examples.jar");
const missingJars = [sdkJar, examplesJar].filter((jar) => !existsSync(jar));
/** CLIPPER_JAVA_TESTS=1 (what .ci/run sets after the Maven build): a missing jar fails these tests instead of skipping them. */
const javaRequired = process.env.CLIPPER_JAVA_TESTS === "1";
const skip = missingJars.length > 0 && !javaRequired;
if (skip) {
  console.warn(`skipping the Java deploy tests: ${missingJars.join(", ")} missing (cd sdk/java && mvn install; CLIPPER_JAVA_TESTS=1 makes this a failure)`);
}

const execFileAsync = promisify(execFile);
/** The real CLI as a process, as a user runs it. */
async function clipper(system: TestSystem, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const addresses = ["--registry", system.address("registry"), "--container-manager", system.address("container-manager")];
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [join(repoRoot, "cli", "clipper.mjs"), ...args, ...addresses], {
      cwd: repoRoot,
      encoding: "utf8",
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}

describe.skipIf(skip)("Java models deployed with --java", () => {
  const system = new TestSystem();

  beforeAll(async () => {
    expect(missingJars, "the jars of `cd sdk/java && mvn install` (CLIPPER_JAVA_TESTS=1 requires them)").toEqual([]);
    await system.start();
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("deploys the example SumModel from its jar, links it, and answers REST queries with its sums", async () => {
    await system.management().createApplication({ name: "sum-java", inputType: InputType.DOUBLES, defaultOutput: "-1", sloMicros: 5_000_000n });
    const deployed = await clipper(
      system,
      "model",
      "deploy",
      "sum-java",
      "--version",
      "1",
      "--input-type",
      "doubles",
      "--java",
      `${examplesJar}:com.example.SumModel`,
      "--jvm-options=-Xmx128m -Xss1m",
      "--timeout",
      "90",
    );
    expect(deployed.stderr).toBe("");
    expect(deployed.code).toBe(0);
    expect(deployed.stdout).toContain("deployed sum-java:1: 1/1 replicas ready");
    const linked = await clipper(system, "link", "sum-java", "sum-java");
    expect(linked.code).toBe(0);

    const one = await waitFor("a model answer", async () => {
      const r = await postJson(`${system.gatewayUrl}/sum-java/predict`, { input: [1.5, 2.25, 3] });
      return r.json.default === false ? r : undefined;
    });
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ output: 6.75, default: false, models: ["sum-java:1"] });
    const batch = await postJson(`${system.gatewayUrl}/sum-java/predict`, {
      input_batch: [
        [1, 2],
        [0.5, 0.25],
        [-4, 14],
      ],
    });
    expect(batch.status).toBe(200);
    expect((batch.json.batch_predictions as Array<{ output: unknown }>).map((p) => p.output)).toEqual([3, 0.75, 10]);

    // The registry holds the runtime the CLI built: the uploaded jar's digest, the class and the JVM options.
    const model = await system.management().getModel({ name: "sum-java", version: "1" });
    expect(model.model?.runtime?.kind).toMatchObject({
      case: "javaClass",
      value: { className: "com.example.SumModel", jvmOptions: ["-Xmx128m", "-Xss1m"] },
    });
    const listed = await clipper(system, "model", "list", "sum-java");
    expect(listed.stdout).toContain("java com.example.SumModel");

    // What the container-manager ran, from the replica's log: the JVM with the SDK's ModelMain and the model class.
    const logs = await clipper(system, "model", "logs", "sum-java");
    expect(logs.stdout).toContain(`java: java, SDK ${sdkJar}`);
    expect(logs.stdout).toContain("com.example.SumModel loaded: SERVING");
  }, 180_000);

  it("fails a deploy whose class is not in the jar with the replica's own message", async () => {
    const res = await clipper(
      system,
      "model",
      "deploy",
      "no-class",
      "--version",
      "1",
      "--input-type",
      "doubles",
      "--java",
      `${examplesJar}:com.example.NoSuchModel`,
      "--timeout",
      "90",
    );
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("class com.example.NoSuchModel is not on the class path");
  }, 180_000);

  it("refuses a model class of another input type at start, naming both", async () => {
    const res = await clipper(
      system,
      "model",
      "deploy",
      "sum-strings",
      "--version",
      "1",
      "--input-type",
      "strings",
      "--java",
      `${examplesJar}:com.example.SumModel`,
      "--timeout",
      "90",
    );
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("com.example.SumModel is a Model<double[]>, but the input type is");
  }, 180_000);
});

describe.skipIf(skip)("a container-manager without the Java SDK jar", () => {
  const missingSdkJar = join(repoRoot, "no-such-dir", "sdk-all.jar");
  const system = new TestSystem({ args: { "container-manager": ["--java-sdk-jar", missingSdkJar] } });

  beforeAll(async () => {
    await system.startService("registry");
    await system.startService("container-manager");
  }, 120_000);

  afterAll(async () => {
    await system.stop();
  }, 60_000);

  it("refuses a java_class deploy at once with FAILED_PRECONDITION naming the flag", async () => {
    const cm = system.containerManager();
    const content = Buffer.from("PK\x03\x04 not really a jar, but the store takes any artifact");
    const sha256 = createHash("sha256").update(content).digest("hex");
    async function* parts() {
      yield { part: { case: "header" as const, value: { sizeBytes: BigInt(content.length), sha256 } } };
      yield { part: { case: "chunk" as const, value: content } };
    }
    const stored = await cm.uploadArtifact(parts());
    const started = Date.now();
    const err = await system
      .deploy({
        name: "sum-java",
        version: "1",
        inputType: InputType.DOUBLES,
        runtime: { kind: { case: "javaClass", value: { jarDigest: stored.digest, className: "com.example.SumModel" } } },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((err as ConnectError).rawMessage).toBe(
      `model.runtime: java_class models need the Java SDK's runnable jar, and ${missingSdkJar} does not exist: build it (cd sdk/java && mvn install) or give the container-manager --java-sdk-jar`,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    // Nothing was registered.
    expect((await system.management().listModels({ name: "sum-java" })).models).toEqual([]);

    // A jar that was never uploaded is named as such before Java is looked at.
    const missing = await system
      .deploy({
        name: "sum-java",
        version: "1",
        inputType: InputType.DOUBLES,
        runtime: { kind: { case: "javaClass", value: { jarDigest: "b".repeat(64), className: "com.example.SumModel" } } },
      })
      .catch((e: unknown) => e);
    expect((missing as ConnectError).rawMessage).toContain(`artifact ${"b".repeat(64)} is not in the artifact store; upload the jar with UploadArtifact first`);
  }, 60_000);
});
