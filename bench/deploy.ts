// How the benchmark and the soak test deploy their models: as users would, through the
// container-manager, served by the SDKs' runners.
import { join } from "node:path";
import { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { pythonFileModel, repoRoot } from "../test/system.js";

export const benchDir = join(repoRoot, "bench");
export const modelsDir = join(benchDir, "models");
export const systemPython = join(repoRoot, ".venv", "bin", "python");

/** A Python model of bench/models served by the SDK's file runner, as `clipper model deploy --python` does. */
export function pythonModel(name: string, file: string, maxBatchSize = 0) {
  return { ...pythonFileModel(name, join(modelsDir, file)), maxBatchSize };
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
