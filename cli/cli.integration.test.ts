import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import {
  ContainerManagerService,
  type DeployModelRequest,
  DeployStage,
  type GetLogsRequest,
  type ScaleModelRequest,
  type UploadArtifactRequest,
} from "../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../gen/clipper/v1/management_service_pb.js";
import { ReplicaState } from "../gen/clipper/v1/resources_pb.js";
import { createGrpcTransport, failedPrecondition, notFound, type RunningGrpcServer, registration, startGrpcServer } from "../services/shared/index.js";
import { type CliEnvironment, runCli } from "./cli.js";
import { modelDeploy } from "./deploy.js";
import type { Output } from "./output.js";
import { resolveAddresses } from "./service-addresses.js";

class Capture implements Output {
  text = "";
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

const replica = (id: string, state: ReplicaState, endpoint: string) => ({ id, modelName: "sum", modelVersion: "1", state, endpoint });

describe("clipper CLI", () => {
  let workDir: string;
  let repoRoot: string;
  let registry: RunningGrpcServer;
  let containerManager: RunningGrpcServer;
  let gateway: http.Server;
  let gatewayAddress: string;
  const calls: { method: string; request: unknown }[] = [];
  const gatewayRequests: { url: string; body: unknown }[] = [];
  let jarContent: Buffer;

  beforeAll(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-cli-"));
    // A stand-in repository root with a venv python, as the real one has.
    repoRoot = path.join(workDir, "repo");
    fs.mkdirSync(path.join(repoRoot, ".venv", "bin"), { recursive: true });
    fs.writeFileSync(path.join(repoRoot, ".venv", "bin", "python"), "");
    fs.writeFileSync(path.join(workDir, "model.py"), "def predict(xs):\n    return xs\n");
    fs.writeFileSync(path.join(workDir, "model.ts"), "export default {};\n");
    // Big enough for three upload chunks; a jar is a zip file, which starts with "PK\x03\x04".
    jarContent = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(2 * 1024 * 1024 + 10, 7)]);
    fs.writeFileSync(path.join(workDir, "app.jar"), jarContent);
    fs.writeFileSync(path.join(workDir, "not-a.jar"), "plain text");

    const record = (method: string, request: unknown) => calls.push({ method, request });
    registry = await startGrpcServer({
      port: 0,
      services: [
        registration(ManagementService, {
          createApplication(req) {
            record("createApplication", req);
            return { application: { name: req.name, inputType: req.inputType, defaultOutput: req.defaultOutput, sloMicros: req.sloMicros } };
          },
          listApplications() {
            return {
              applications: [
                { name: "digits", inputType: InputType.DOUBLES, defaultOutput: "-1.0", sloMicros: 100000n, linkedModels: ["sum"] },
                { name: "greet", inputType: InputType.STRINGS, defaultOutput: "none", sloMicros: 20000n },
              ],
            };
          },
          deleteApplication(req) {
            record("deleteApplication", req);
            throw notFound(`application "${req.name}" does not exist`);
          },
          linkModel(req) {
            record("linkModel", req);
            return { application: { name: req.application, linkedModels: [req.modelName] } };
          },
          unlinkModel(req) {
            record("unlinkModel", req);
            return { application: { name: req.application } };
          },
          listModels() {
            return {
              models: [
                {
                  name: "sum",
                  version: "1",
                  inputType: InputType.DOUBLES,
                  desiredReplicas: 2,
                  runtime: { kind: { case: "command", value: { argv: ["python3", "my model.py"] } } },
                },
                {
                  name: "sum",
                  version: "2",
                  inputType: InputType.DOUBLES,
                  desiredReplicas: 1,
                  maxBatchSize: 8,
                  runtime: { kind: { case: "nodeModule", value: { modulePath: "/m/sum.ts" } } },
                },
              ],
              currentVersions: [{ modelName: "sum", version: "2" }],
            };
          },
          setModelVersion(req) {
            record("setModelVersion", req);
            return { previousVersion: "2" };
          },
          listReplicas() {
            return {
              replicaSets: [
                {
                  modelName: "sum",
                  modelVersion: "1",
                  replicas: [replica("sum-1-a", ReplicaState.READY, "127.0.0.1:5001"), replica("sum-1-b", ReplicaState.FAILED, "")],
                },
              ],
            };
          },
        }),
      ],
    });
    containerManager = await startGrpcServer({
      port: 0,
      services: [
        registration(ContainerManagerService, {
          async uploadArtifact(requests: AsyncIterable<UploadArtifactRequest>) {
            const chunks: Buffer[] = [];
            let header: unknown;
            for await (const r of requests) {
              if (r.part.case === "header") header = r.part.value;
              if (r.part.case === "chunk") chunks.push(Buffer.from(r.part.value));
            }
            const content = Buffer.concat(chunks);
            record("uploadArtifact", { header, chunks: chunks.length, content });
            return { digest: createHash("sha256").update(content).digest("hex"), sizeBytes: BigInt(content.length) };
          },
          async *deployModel(req: DeployModelRequest) {
            record("deployModel", req);
            const desiredReplicas = req.model?.desiredReplicas ?? 0;
            yield { stage: DeployStage.REGISTERED, desiredReplicas };
            await sleep(30);
            yield { stage: DeployStage.STARTING, message: "starting 2 replicas", desiredReplicas };
            await sleep(30);
            if (req.model?.name === "broken") {
              throw failedPrecondition(
                "replica broken-1-a exited with code 1 before it was ready; last log lines:\nTraceback (most recent call last):\nImportError: no module named sklearn",
              );
            }
            yield { stage: DeployStage.STARTING, readyReplicas: 1, desiredReplicas };
            await sleep(30);
            yield {
              stage: DeployStage.READY,
              readyReplicas: 2,
              desiredReplicas,
              replicas: [replica("sum-1-a", ReplicaState.READY, "127.0.0.1:5001"), replica("sum-1-b", ReplicaState.READY, "127.0.0.1:5002")],
            };
          },
          scaleModel(req: ScaleModelRequest) {
            record("scaleModel", req);
            return { replicas: [replica("sum-1-a", ReplicaState.READY, "127.0.0.1:5001"), replica("sum-1-c", ReplicaState.STARTING, "127.0.0.1:5003")] };
          },
          getLogs(req: GetLogsRequest) {
            record("getLogs", req);
            return {
              logs: [
                { replicaId: "sum-1-a", lines: ["ready on 5001", "served 3 queries"] },
                { replicaId: "sum-1-b", lines: ["ready on 5002"] },
              ],
            };
          },
        }),
      ],
    });
    gateway = http.createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        gatewayRequests.push({ url: req.url ?? "", body: JSON.parse(body) as unknown });
        if (req.url === "/missing/predict") {
          res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: 'application "missing" does not exist' }));
          return;
        }
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ query_id: 7, output: 6, default: false }));
      });
    });
    await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve));
    gatewayAddress = `127.0.0.1:${(gateway.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await registry.close();
    await containerManager.close();
    await new Promise<void>((resolve) => gateway.close(() => resolve()));
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    calls.length = 0;
    gatewayRequests.length = 0;
  });

  async function clipper(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const stdout = new Capture();
    const stderr = new Capture();
    const env: CliEnvironment = { stdout, stderr, env: { CLIPPER_DATA_DIR: path.join(workDir, "data") }, cwd: workDir, repoRoot };
    const addresses = ["--registry", registry.address, "--container-manager", containerManager.address, "--gateway", gatewayAddress];
    const code = await runCli([...argv, ...(argv.includes("--help") ? [] : addresses)], env);
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  function lastCall(method: string): Record<string, unknown> {
    const call = calls.filter((c) => c.method === method).at(-1);
    expect(call, `no ${method} call`).toBeDefined();
    return call?.request as Record<string, unknown>;
  }

  describe("arguments and usage", () => {
    it("prints the overview for --help and exits 0", async () => {
      const r = await clipper("--help");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Usage: clipper <command> [options]");
      expect(r.stdout).toContain("model deploy");
    });

    it.each([
      "up",
      "down",
      "status",
      "clusters",
      "app create",
      "app list",
      "app delete",
      "model deploy",
      "model list",
      "model set-version",
      "model scale",
      "model logs",
      "link",
      "unlink",
      "predict",
    ])("prints help with examples for `%s --help`", async (name) => {
      const r = await clipper(...name.split(" "), "--help");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: clipper ${name}`);
      expect(r.stdout).toMatch(/Examples:\n {2}clipper /);
      expect(r.stdout).toContain("--data-dir DIR");
    });

    it("lists a group's subcommands for `model --help` and `help model deploy`", async () => {
      const group = await clipper("model", "--help");
      expect(group.code).toBe(0);
      expect(group.stdout).toContain("Usage: clipper model <deploy|list|set-version|batching|scale|logs> ...");
      const help = await clipper("help", "model", "deploy");
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("Usage: clipper model deploy NAME --version V");
    });

    it("rejects a missing or unknown command with usage and exit 2", async () => {
      const none = await runCli([], { stdout: new Capture(), stderr: new Capture(), env: {}, cwd: workDir, repoRoot });
      expect(none).toBe(2);
      const unknown = await clipper("deploy");
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/^error: unknown command `deploy`\n\nUsage: clipper <command>/);
      const sub = await clipper("model", "remove", "x");
      expect(sub.code).toBe(2);
      expect(sub.stderr).toContain("unknown command `clipper model remove`; `clipper model` has models: deploy, list, set-version, scale, logs");
      const bare = await clipper("app");
      expect(bare.code).toBe(2);
      expect(bare.stderr).toMatch(/^error: `clipper app` needs a subcommand\n\nUsage: clipper app <create\|list\|delete\|update\|policy> \.\.\./);
    });

    it("accepts global options before the command", async () => {
      const r = await runCli(["--registry", registry.address, "--data-dir=/nowhere", "app", "list"], {
        stdout: new Capture(),
        stderr: new Capture(),
        env: {},
        cwd: workDir,
        repoRoot,
      });
      expect(r).toBe(0);
      const stderr = new Capture();
      expect(await runCli(["--registry", registry.address], { stdout: new Capture(), stderr, env: {}, cwd: workDir, repoRoot })).toBe(2);
      expect(stderr.text).toMatch(/^error: expected a command before --registry\n\nUsage: clipper <command>/);
    });

    it("rejects an unknown flag with the command's usage and exit 2", async () => {
      const r = await clipper("app", "list", "--bogus");
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: Unknown option '--bogus'/);
      expect(r.stderr).toContain("Usage: clipper app list");
      expect(r.stdout).toBe("");
    });

    it("rejects missing and extra arguments, bad numbers and bad input types", async () => {
      expect((await clipper("link", "digits")).stderr).toMatch(/^error: missing MODEL\n/);
      expect((await clipper("app", "delete", "a", "b")).stderr).toMatch(/^error: unexpected argument "b"\n/);
      const replicas = await clipper("model", "scale", "sum", "--replicas", "two");
      expect(replicas.code).toBe(2);
      expect(replicas.stderr).toContain('error: --replicas must be a whole number from 0 to 1000, got "two"');
      const type = await clipper("app", "create", "digits", "--input-type", "matrix", "--default-output", "0");
      expect(type.code).toBe(2);
      expect(type.stderr).toContain('error: --input-type "matrix" is not an input type');
      const missing = await clipper("app", "create", "digits", "--input-type", "doubles");
      expect(missing.stderr).toMatch(/^error: --default-output is required/);
      const stderr = new Capture();
      const value = await runCli(["model", "deploy", "sum", "--version"], { stdout: new Capture(), stderr, env: {}, cwd: workDir, repoRoot });
      expect(value).toBe(2);
      expect(stderr.text).toMatch(/^error: Option '--version <value>' argument missing\n\nUsage: clipper model deploy/);
      expect(calls).toEqual([]);
    });

    it("needs exactly one runtime flag for a deploy, and a well-formed one", async () => {
      const none = await clipper("model", "deploy", "sum", "--version", "1", "--input-type", "doubles");
      expect(none.code).toBe(2);
      expect(none.stderr).toContain("give exactly one of --python FILE:FUNC, --node MODULE, --java JAR:CLASS, --r FILE or --command ARGV");
      const two = await clipper("model", "deploy", "sum", "--version", "1", "--input-type", "doubles", "--node", "model.ts", "--command", "x");
      expect(two.code).toBe(2);
      const quote = await clipper("model", "deploy", "sum", "--version", "1", "--input-type", "doubles", "--command", "python3 'model.py");
      expect(quote.code).toBe(2);
      expect(quote.stderr).toContain("error: --command: unterminated single quote");
      const func = await clipper("model", "deploy", "sum", "--version", "1", "--input-type", "doubles", "--python", "model.py");
      expect(func.stderr).toContain('error: --python must be FILE:FUNC, got "model.py"');
      const file = await clipper("model", "deploy", "sum", "--version", "1", "--input-type", "doubles", "--python", "nope.py:f");
      expect(file.code).toBe(1);
      expect(file.stderr).toBe(`error: --python: ${path.join(workDir, "nope.py")} does not exist\n`);
      expect(calls).toEqual([]);
    });

    it("rejects input that is not JSON for predict", async () => {
      const r = await clipper("predict", "digits", "[1, 2");
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: INPUT_JSON is not valid JSON/);
      const batch = await clipper("predict", "digits", "3", "--batch");
      expect(batch.stderr).toMatch(/^error: with --batch, INPUT_JSON must be a JSON list of inputs/);
    });
  });

  describe("applications and links", () => {
    it("creates an application, taking a negative default output", async () => {
      const r = await clipper("app", "create", "digits", "--input-type", "doubles", "--default-output", "-1.0", "--slo-micros", "20000");
      expect(r).toMatchObject({ code: 0, stderr: "" });
      expect(r.stdout).toBe('created application digits (doubles, slo 20000 µs, default output "-1.0")\n');
      expect(lastCall("createApplication")).toMatchObject({ name: "digits", inputType: InputType.DOUBLES, defaultOutput: "-1.0", sloMicros: 20000n });
    });

    it("lists applications with their linked models", async () => {
      const r = await clipper("app", "list");
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        [
          "NAME    INPUT    SLO_MICROS  DEFAULT_OUTPUT  MODELS",
          "digits  doubles  100000      -1.0            sum",
          "greet   strings  20000       none            -",
          "",
        ].join("\n"),
      );
    });

    it("prints the server's message for a gRPC error and exits 1", async () => {
      const r = await clipper("app", "delete", "nope");
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('error: application "nope" does not exist\n');
      expect(lastCall("deleteApplication")).toMatchObject({ name: "nope" });
    });

    it("links and unlinks a model", async () => {
      const l = await clipper("link", "digits", "sum");
      expect(l.stdout).toBe("linked model sum to application digits (models: sum)\n");
      expect(lastCall("linkModel")).toMatchObject({ application: "digits", modelName: "sum" });
      const u = await clipper("unlink", "digits", "sum");
      expect(u.stdout).toBe("unlinked model sum from application digits\n");
      expect(lastCall("unlinkModel")).toMatchObject({ application: "digits", modelName: "sum" });
    });
  });

  describe("models", () => {
    it("deploys a command model, showing each change of progress as a plain line", async () => {
      const r = await clipper(
        "model",
        "deploy",
        "sum",
        "--version",
        "1",
        "--input-type",
        "doubles",
        "--command",
        "python3 'my model.py' --fast",
        "--replicas",
        "2",
        "--batch-size",
        "16",
        "--set-current",
        "--timeout",
        "30",
      );
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        [
          "sum:1: registered, 0/2 replicas ready",
          "sum:1: starting, 0/2 replicas ready: starting 2 replicas",
          "sum:1: starting, 1/2 replicas ready",
          "sum:1: ready, 2/2 replicas ready",
          "deployed sum:1: 2/2 replicas ready",
          "  sum-1-a  ready  127.0.0.1:5001",
          "  sum-1-b  ready  127.0.0.1:5002",
          "",
        ].join("\n"),
      );
      const req = lastCall("deployModel") as unknown as DeployModelRequest;
      expect(req.setCurrent).toBe(true);
      expect(req.timeoutSeconds).toBe(30);
      expect(req.model).toMatchObject({ name: "sum", version: "1", inputType: InputType.DOUBLES, desiredReplicas: 2, maxBatchSize: 16 });
      expect(req.model?.runtime?.kind).toMatchObject({ case: "command", value: { argv: ["python3", "my model.py", "--fast"], workingDir: workDir } });
    });

    it("maps --python to the Python SDK's file runner in the repository's venv", async () => {
      const r = await clipper("model", "deploy", "sum", "--version", "1", "--input-type", "doubles", "--python", "model.py:predict");
      expect(r.code).toBe(0);
      const req = lastCall("deployModel") as unknown as DeployModelRequest;
      expect(req.model?.desiredReplicas).toBe(1);
      expect(req.setCurrent).toBe(false);
      expect(req.model?.runtime?.kind).toMatchObject({
        case: "command",
        value: {
          argv: [path.join(repoRoot, ".venv", "bin", "python"), "-m", "clipper_runtime.file_runner", path.join(workDir, "model.py"), "predict"],
          env: { PYTHONPATH: path.join(repoRoot, "sdk", "python", "src") },
          workingDir: workDir,
        },
      });
    });

    it("maps --node to a node_module runtime with an absolute path", async () => {
      const r = await clipper("model", "deploy", "sum", "--version", "3", "--input-type", "strings", "--node", "./model.ts");
      expect(r.code).toBe(0);
      const req = lastCall("deployModel") as unknown as DeployModelRequest;
      expect(req.model?.inputType).toBe(InputType.STRINGS);
      expect(req.model?.runtime?.kind).toMatchObject({ case: "nodeModule", value: { modulePath: path.join(workDir, "model.ts") } });
    });

    it("maps --java to a java_class runtime: the jar uploaded in chunks to the artifact store, its digest, the class and the JVM options", async () => {
      const r = await clipper(
        "model",
        "deploy",
        "sum-java",
        "--version",
        "1",
        "--input-type",
        "doubles",
        "--java",
        "app.jar:com.example.SumModel",
        // A value starting with "-" goes after "=" (node:util parseArgs takes "--jvm-options -X..." for a missing value).
        "--jvm-options=-Xmx256m -Dgreeting='hello world'",
      );
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const upload = lastCall("uploadArtifact") as { header: { sizeBytes: bigint; sha256: string }; chunks: number; content: Buffer };
      const digest = createHash("sha256").update(jarContent).digest("hex");
      expect(upload.header).toMatchObject({ sizeBytes: BigInt(jarContent.length), sha256: digest });
      expect(upload.chunks).toBe(3);
      expect(upload.content.equals(jarContent)).toBe(true);
      const req = lastCall("deployModel") as unknown as DeployModelRequest;
      expect(req.model?.runtime?.kind).toMatchObject({
        case: "javaClass",
        value: { jarDigest: digest, className: "com.example.SumModel", jvmOptions: ["-Xmx256m", "-Dgreeting=hello world"] },
      });
    });

    it("refuses a --java that is not JAR:CLASS, a missing jar, a file that is not a jar, and --jvm-options without --java, before uploading", async () => {
      const deploy = (...flags: string[]) => clipper("model", "deploy", "sum-java", "--version", "1", "--input-type", "doubles", ...flags);
      let r = await deploy("--java", "app.jar");
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--java must be JAR:CLASS (app.jar:com.example.MyModel), got "app.jar"');
      r = await deploy("--java", "app.jar:com/example/Sum.class");
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--java: "com/example/Sum.class" is not a fully qualified Java class name');
      r = await deploy("--java", "missing.jar:com.example.Sum");
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error: --java: ${path.join(workDir, "missing.jar")} does not exist\n`);
      r = await deploy("--java", "not-a.jar:com.example.Sum");
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error: --java: ${path.join(workDir, "not-a.jar")} is not a jar (not a zip file)\n`);
      r = await deploy("--node", "./model.ts", "--jvm-options=-Xmx1g");
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("--jvm-options goes with --java");
      expect(calls.filter((c) => c.method === "uploadArtifact" || c.method === "deployModel")).toEqual([]);
    });

    it("reports a failed deploy with the server's message, including the replica's log lines, and exits 1", async () => {
      const r = await clipper("model", "deploy", "broken", "--version", "1", "--input-type", "doubles", "--command", "python3 broken.py");
      expect(r.code).toBe(1);
      expect(r.stdout).toContain("broken:1: starting, 0/1 replicas ready: starting 2 replicas\n");
      expect(r.stdout).not.toContain("deployed");
      expect(r.stderr).toBe(
        "error: replica broken-1-a exited with code 1 before it was ready; last log lines:\nTraceback (most recent call last):\nImportError: no module named sklearn\n",
      );
    });

    it("redraws one spinner line in place on a terminal and clears it at the end", async () => {
      const transport = createGrpcTransport({ address: containerManager.address });
      try {
        const out = new Capture(true);
        const client = createClient(ContainerManagerService, transport);
        await modelDeploy(
          client,
          {
            model: {
              $typeName: "clipper.v1.Model",
              name: "sum",
              version: "1",
              inputType: InputType.DOUBLES,
              desiredReplicas: 2,
              maxBatchSize: 0,
              labels: {},
              createdAtMs: 0n,
            },
            setCurrent: false,
            timeoutSeconds: 0,
          },
          out,
          { delayMs: 0, frameMs: 10 },
        );
        expect(out.text).toMatch(/\r\x1b\[K[|/\\-] sum:1: starting, 1\/2 replicas ready/);
        expect(out.text).not.toContain("\nsum:1:");
        expect(out.text).toMatch(/\r\x1b\[Kdeployed sum:1: 2\/2 replicas ready\n/);
      } finally {
        transport.close();
      }
    });

    it("lists model versions with the current one marked", async () => {
      const r = await clipper("model", "list");
      expect(r.stdout).toBe(
        [
          "NAME  VERSION  CURRENT  INPUT    REPLICAS  BATCH  RUNTIME",
          "sum   1                 doubles  2         -      command python3 'my model.py'",
          "sum   2        *        doubles  1         8      node /m/sum.ts",
          "",
        ].join("\n"),
      );
    });

    it("sets the current version", async () => {
      const r = await clipper("model", "set-version", "sum", "1");
      expect(r.stdout).toBe("model sum: current version is now 1 (was 2)\n");
      expect(lastCall("setModelVersion")).toMatchObject({ name: "sum", version: "1" });
    });

    it("scales a model version", async () => {
      const r = await clipper("model", "scale", "sum", "--version", "1", "--replicas", "2");
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("scaled sum:1 to 2 replicas (1 ready)\n  sum-1-a  ready  127.0.0.1:5001\n  sum-1-c  starting  127.0.0.1:5003\n");
      expect(lastCall("scaleModel")).toMatchObject({ name: "sum", version: "1", replicas: 2, timeoutSeconds: 0 });
      const missing = await clipper("model", "scale", "sum");
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/^error: --replicas is required/);
    });

    it("prints each replica's logs under a header", async () => {
      const r = await clipper("model", "logs", "sum", "--tail", "2");
      expect(r.stdout).toBe("==> replica sum-1-a <==\nready on 5001\nserved 3 queries\n==> replica sum-1-b <==\nready on 5002\n");
      expect(lastCall("getLogs")).toMatchObject({ modelName: "sum", modelVersion: "", tailLines: 2 });
    });
  });

  describe("status and predict", () => {
    it("shows services, applications, models with ready counts, and replicas", async () => {
      const r = await clipper("status");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("services (data dir");
      expect(r.stdout).toContain("not started by `clipper up`");
      expect(r.stdout).toContain("  digits  doubles  100000      sum\n");
      expect(r.stdout).toContain("  sum   1                 1/2            command python3 'my model.py'\n");
      expect(r.stdout).toMatch(/ {2}sum:1 {2}sum-1-b {2}failed/);
    });

    it("posts the input to the gateway and prints its JSON answer", async () => {
      const r = await clipper("predict", "digits", "[1.0, 2, 3]", "--version", "2");
      expect(r).toEqual({ code: 0, stdout: '{"query_id":7,"output":6,"default":false}\n', stderr: "" });
      expect(gatewayRequests).toEqual([{ url: "/digits/predict", body: { input: [1, 2, 3], version: "2" } }]);
      const batch = await clipper("predict", "digits", "[[1], [2]]", "--batch");
      expect(batch.code).toBe(0);
      expect(gatewayRequests.at(-1)).toEqual({ url: "/digits/predict", body: { input_batch: [[1], [2]] } });
    });

    it("prints the gateway's error and exits 1", async () => {
      const r = await clipper("predict", "missing", "[1]");
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('error: gateway answered 404: application "missing" does not exist\n');
    });
  });

  it("takes service addresses from services.json when no flag is given", () => {
    const dataDir = path.join(workDir, "recorded");
    fs.mkdirSync(path.join(dataDir, "run"), { recursive: true });
    const service = (name: string, port: number) => ({
      name,
      pid: 1,
      startTicks: null,
      host: "0.0.0.0",
      port,
      metricsPort: null,
      argv: [],
      log: "",
      startedAtMs: 0,
    });
    fs.writeFileSync(
      path.join(dataDir, "run", "services.json"),
      JSON.stringify({ version: 1, dataDir, host: "0.0.0.0", services: [service("registry", 2338), service("gateway", 2337)] }),
    );
    const cluster = { name: "default", dataDir };
    expect({ ...resolveAddresses({}, cluster) }).toEqual({ registry: "127.0.0.1:2338", containerManager: "127.0.0.1:1340", gateway: "127.0.0.1:2337" });
    expect(resolveAddresses({ registry: "10.0.0.1:1" }, cluster).registry).toBe("10.0.0.1:1");
    // A named cluster has no default ports: what it did not record is an error, never the default cluster's service.
    const named = resolveAddresses({}, { name: "a", dataDir });
    expect(named.gateway).toBe("127.0.0.1:2337");
    expect(() => named.containerManager).toThrow(
      `cluster "a" is not running (no container-manager in ${path.join(dataDir, "run", "services.json")}); \`clipper up --cluster a\` starts it`,
    );
  });
});
