/**
 * `clipper model deploy`: the model version and its runtime from the flags,
 * then the container-manager's DeployModel stream with its progress shown.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Model, ModelResourcesSchema, type ModelRuntime, ModelRuntimeSchema, ModelSchema, type Replica } from "../gen/clipper/v1/resources_pb.js";
import { CliError } from "./cli-error.js";
import { type Invocation, inputTypeFlag, intFlag, positional, requiredString, stringFlag, UsageError } from "./invocation.js";
import { type ContainerManagerClient, replicaWaitDeadlineMs } from "./management-commands.js";
import { type Output, replicaStateName } from "./output.js";
import { DeployProgress, type ProgressOptions } from "./progress.js";
import { ShellWordsError, splitShellWords } from "./shell-words.js";

/** The flags that say how a replica runs; a deploy takes exactly one. */
const RUNTIME_FLAGS = ["python", "node", "java", "r", "command"] as const;
/** How much of an artifact one UploadArtifact message carries (the container-manager accepts 16 MiB messages). */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;
/** A Java binary class name, as the container-manager checks it. */
/** Time for a whole artifact upload (a jar of a few hundred MiB over loopback). */
const ARTIFACT_UPLOAD_TIMEOUT_MS = 300_000;
const JAVA_CLASS_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$/;

interface RuntimeFlag {
  kind: (typeof RUNTIME_FLAGS)[number];
  value: string;
}

export async function runDeploy(inv: Invocation): Promise<number> {
  const given = RUNTIME_FLAGS.flatMap((kind): RuntimeFlag[] => {
    const value = stringFlag(inv, kind);
    return value === undefined ? [] : [{ kind, value }];
  });
  const runtime = given.length === 1 ? given[0] : undefined;
  if (runtime === undefined)
    throw new UsageError("give exactly one of --python FILE:FUNC, --node MODULE, --java JAR:CLASS, --r FILE or --command ARGV", inv.command);
  if (runtime.kind !== "java" && stringFlag(inv, "jvm-options") !== undefined) throw new UsageError("--jvm-options goes with --java", inv.command);
  // Every flag is checked before a jar is uploaded.
  const name = positional(inv, 0);
  const version = requiredString(inv, "version");
  const inputType = inputTypeFlag(inv, "input-type");
  const desiredReplicas = intFlag(inv, "replicas", 1, 0, 1000);
  const maxBatchSize = intFlag(inv, "batch-size", 0, 0, 1_000_000);
  const timeoutSeconds = intFlag(inv, "timeout", 0, 0, 86_400);
  const [requests, limits] = [resourceList(inv, "requests"), resourceList(inv, "limits")];
  const declared = Object.keys(requests).length + Object.keys(limits).length > 0;
  const model = create(ModelSchema, {
    name,
    version,
    inputType,
    runtime: await deployRuntime(inv, runtime),
    desiredReplicas,
    maxBatchSize,
    ...(declared ? { resources: create(ModelResourcesSchema, { requests, limits }) } : {}),
  });
  await modelDeploy(inv.containerManager(), { model, setCurrent: inv.values["set-current"] === true, timeoutSeconds }, inv.env.stdout, inv.env.progress);
  return 0;
}

/** --requests / --limits as `name=quantity,...` (the registry checks names and quantities). */
function resourceList(inv: Invocation, flag: "requests" | "limits"): Record<string, string> {
  const value = stringFlag(inv, flag);
  const list: Record<string, string> = {};
  if (value === undefined) return list;
  for (const item of value.split(",")) {
    const eq = item.indexOf("=");
    if (eq <= 0 || eq === item.length - 1) throw new UsageError(`--${flag} takes RESOURCE=QUANTITY,... (cpu=500m,memory=256Mi), got "${item}"`, inv.command);
    list[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return list;
}

/**
 * The runtime for --java JAR:CLASS: the jar goes into the container-manager's
 * artifact store (content-addressed, like a pickled closure), so the
 * container-manager needs no access to this machine's files.
 */
async function javaRuntime(inv: Invocation, value: string): Promise<ModelRuntime> {
  const colon = value.lastIndexOf(":");
  if (colon <= 0 || colon === value.length - 1) throw new UsageError(`--java must be JAR:CLASS (app.jar:com.example.MyModel), got "${value}"`, inv.command);
  const jar = path.resolve(inv.env.cwd, value.slice(0, colon));
  const className = value.slice(colon + 1);
  if (!JAVA_CLASS_NAME.test(className)) {
    throw new UsageError(`--java: "${className}" is not a fully qualified Java class name (com.example.MyModel)`, inv.command);
  }
  let jvmOptions: string[] = [];
  const rawOptions = stringFlag(inv, "jvm-options");
  if (rawOptions !== undefined) {
    try {
      jvmOptions = splitShellWords(rawOptions);
    } catch (err) {
      if (err instanceof ShellWordsError) throw new UsageError(`--jvm-options: ${err.message}`, inv.command);
      throw err;
    }
  }
  const content = readJar(jar);
  const jarDigest = await uploadArtifact(inv.containerManager(), content);
  return create(ModelRuntimeSchema, { kind: { case: "javaClass", value: { jarDigest, className, jvmOptions } } });
}

/**
 * The runtime for --r FILE: an .rds written by clippermodel::save_model (the
 * function and its packages) or an .R script that defines predict, uploaded to
 * the artifact store like a jar.
 */
async function rRuntime(inv: Invocation, value: string): Promise<ModelRuntime> {
  const file = path.resolve(inv.env.cwd, value);
  const extension = path.extname(file).toLowerCase();
  const format = extension === ".rds" ? "rds" : extension === ".r" ? "script" : undefined;
  if (format === undefined) throw new UsageError(`--r takes an .rds (clippermodel::save_model) or an .R script, got "${value}"`, inv.command);
  let content: Buffer;
  try {
    content = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === "ENOENT" ? `--r: ${file} does not exist` : `--r: cannot read ${file}: ${(err as Error).message}`);
  }
  const artifactDigest = await uploadArtifact(inv.containerManager(), content);
  return create(ModelRuntimeSchema, { kind: { case: "rFunction", value: { artifactDigest, format } } });
}

function readJar(file: string): Buffer {
  let content: Buffer;
  try {
    content = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === "ENOENT" ? `--java: ${file} does not exist` : `--java: cannot read ${file}: ${(err as Error).message}`);
  }
  // A jar is a zip file: its first local file header starts with "PK\x03\x04".
  if (content.length < 4 || content.readUInt32LE(0) !== 0x04034b50) throw new CliError(`--java: ${file} is not a jar (not a zip file)`);
  return content;
}

/** Uploads an artifact (a header with its size and sha256, then chunks) and answers its content address. */
export async function uploadArtifact(containerManager: ContainerManagerClient, content: Buffer): Promise<string> {
  const sha256 = createHash("sha256").update(content).digest("hex");
  async function* parts() {
    yield { part: { case: "header" as const, value: { sizeBytes: BigInt(content.length), sha256 } } };
    for (let offset = 0; offset < content.length; offset += UPLOAD_CHUNK_BYTES) {
      yield { part: { case: "chunk" as const, value: content.subarray(offset, offset + UPLOAD_CHUNK_BYTES) } };
    }
  }
  const stored = await containerManager.uploadArtifact(parts(), { timeoutMs: ARTIFACT_UPLOAD_TIMEOUT_MS });
  return stored.digest;
}

/** The runtime for a deploy's --python, --node, --java, --r or --command flag. */
async function deployRuntime(inv: Invocation, { kind, value }: RuntimeFlag): Promise<ModelRuntime> {
  const { cwd, repoRoot } = inv.env;
  switch (kind) {
    case "python": {
      const colon = value.lastIndexOf(":");
      if (colon <= 0 || colon === value.length - 1) throw new UsageError(`--python must be FILE:FUNC, got "${value}"`, inv.command);
      const file = path.resolve(cwd, value.slice(0, colon));
      const func = value.slice(colon + 1);
      if (!fs.existsSync(file)) throw new CliError(`--python: ${file} does not exist`);
      const venvPython = path.join(repoRoot, ".venv", "bin", "python");
      const python = fs.existsSync(venvPython) ? venvPython : "python3";
      // The SDK's sources, so `-m clipper_runtime...` works without installing the SDK into that Python.
      const sdk = path.join(repoRoot, "sdk", "python", "src");
      const pythonPath = [sdk, inv.env.env.PYTHONPATH].filter((p) => p !== undefined && p !== "").join(path.delimiter);
      return create(ModelRuntimeSchema, {
        kind: {
          case: "command",
          value: { argv: [python, "-m", "clipper_runtime.file_runner", file, func], env: { PYTHONPATH: pythonPath }, workingDir: cwd },
        },
      });
    }
    case "node": {
      const modulePath = path.resolve(cwd, value);
      if (!fs.existsSync(modulePath)) throw new CliError(`--node: ${modulePath} does not exist`);
      return create(ModelRuntimeSchema, { kind: { case: "nodeModule", value: { modulePath } } });
    }
    case "java":
      return javaRuntime(inv, value);
    case "r":
      return rRuntime(inv, value);
    case "command": {
      let argv: string[];
      try {
        argv = splitShellWords(value);
      } catch (err) {
        if (err instanceof ShellWordsError) throw new UsageError(`--command: ${err.message}`, inv.command);
        throw err;
      }
      if (argv.length === 0) throw new UsageError("--command is empty", inv.command);
      return create(ModelRuntimeSchema, { kind: { case: "command", value: { argv, workingDir: cwd } } });
    }
  }
}

export interface DeployInput {
  model: Model;
  setCurrent: boolean;
  /** 0: the container-manager's default. */
  timeoutSeconds: number;
}

/**
 * Deploys a model version through the container-manager's DeployModel stream,
 * showing progress; a failure is the server's message (with the replica's log lines).
 */
export async function modelDeploy(
  containerManager: ContainerManagerClient,
  input: DeployInput,
  out: Output,
  progressOptions: ProgressOptions = {},
): Promise<void> {
  const label = `${input.model.name}:${input.model.version}`;
  const progress = new DeployProgress(out, label, progressOptions);
  let last: { ready: number; desired: number; replicas: Replica[] } | undefined;
  try {
    for await (const response of containerManager.deployModel(input, { timeoutMs: replicaWaitDeadlineMs(input.timeoutSeconds) })) {
      progress.update(response);
      last = { ready: response.readyReplicas, desired: response.desiredReplicas, replicas: response.replicas };
    }
  } finally {
    progress.stop();
  }
  const counts = last === undefined ? "" : `: ${last.ready}/${last.desired} replicas ready`;
  out.write(`deployed ${label}${counts}\n`);
  for (const r of last?.replicas ?? []) out.write(`  ${r.id}  ${replicaStateName(r.state)}  ${r.endpoint}\n`);
}
