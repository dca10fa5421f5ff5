// How the benchmark and the soak test deploy their models: as users would, through the
// container-manager, served by the SDKs' runners.
import { join } from "node:path";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { repoRoot } from "../test/system.js";

export const benchDir = join(repoRoot, "bench");
export const modelsDir = join(benchDir, "models");
export const systemPython = join(repoRoot, ".venv", "bin", "python");

/** A Python model served by the SDK's file runner, as `clipper model deploy --python` does. */
export function pythonModel(name: string, file: string, maxBatchSize = 0) {
  return {
    name,
    version: "1",
    inputType: InputType.DOUBLES,
    desiredReplicas: 1,
    maxBatchSize,
    runtime: {
      kind: {
        case: "command" as const,
        value: { argv: [systemPython, "-m", "clipper_runtime.file_runner", join(modelsDir, file), "predict"], env: { PYTHONPATH: join(repoRoot, "sdk", "python", "src") }, workingDir: "" },
      },
    },
  };
}

export function nodeModel(name: string, file: string) {
  return {
    name,
    version: "1",
    inputType: InputType.DOUBLES,
    desiredReplicas: 1,
    maxBatchSize: 0,
    runtime: { kind: { case: "nodeModule" as const, value: { modulePath: join(modelsDir, file) } } },
  };
}

export type ModelSpec = ReturnType<typeof pythonModel> | ReturnType<typeof nodeModel>;
