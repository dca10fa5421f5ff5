/**
 * `clipper model deploy`: the model version and its runtime from the flags,
 * then the container-manager's DeployModel stream with its progress shown.
 */
import fs from "node:fs";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Model, type ModelRuntime, ModelRuntimeSchema, ModelSchema, type Replica } from "../gen/clipper/v1/resources_pb.js";
import { CliError } from "./cli-error.js";
import { type Invocation, inputTypeFlag, intFlag, positional, requiredString, stringFlag, UsageError } from "./invocation.js";
import { type ContainerManagerClient, replicaWaitDeadlineMs } from "./management-commands.js";
import { type Output, replicaStateName } from "./output.js";
import { DeployProgress, type ProgressOptions } from "./progress.js";
import { ShellWordsError, splitShellWords } from "./shell-words.js";

/** The flags that say how a replica runs; a deploy takes exactly one. */
const RUNTIME_FLAGS = ["python", "node", "command"] as const;

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
  if (runtime === undefined) throw new UsageError("give exactly one of --python FILE:FUNC, --node MODULE or --command ARGV", inv.command);
  const model = create(ModelSchema, {
    name: positional(inv, 0),
    version: requiredString(inv, "version"),
    inputType: inputTypeFlag(inv, "input-type"),
    runtime: deployRuntime(inv, runtime),
    desiredReplicas: intFlag(inv, "replicas", 1, 0, 1000),
    maxBatchSize: intFlag(inv, "batch-size", 0, 0, 1_000_000),
  });
  await modelDeploy(
    inv.containerManager(),
    { model, setCurrent: inv.values["set-current"] === true, timeoutSeconds: intFlag(inv, "timeout", 0, 0, 86_400) },
    inv.env.stdout,
    inv.env.progress,
  );
  return 0;
}

/** The runtime for a deploy's --python, --node or --command flag. */
function deployRuntime(inv: Invocation, { kind, value }: RuntimeFlag): ModelRuntime {
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
