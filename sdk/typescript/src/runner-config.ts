import path from "node:path";
import { pathToFileURL } from "node:url";
import type { InputType } from "./gen/clipper/common/v1/data_pb.js";
import { parseInputType } from "./inputs.js";
import type { Model } from "./model.js";

/** What the container-manager tells a node_module replica through its environment. */
export interface RunnerConfig {
  port: number;
  name: string;
  version: string;
  inputType: InputType;
  modulePath: string;
}

export class RunnerConfigError extends Error {
  override name = "RunnerConfigError";
}

export function runnerConfigFromEnv(env: Readonly<Record<string, string | undefined>>): RunnerConfig {
  const required = (key: string): string => {
    const value = env[key];
    if (value === undefined || value === "") throw new RunnerConfigError(`${key} is not set`);
    return value;
  };
  const rawPort = required("CLIPPER_MODEL_PORT");
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port > 65535) throw new RunnerConfigError(`CLIPPER_MODEL_PORT=${JSON.stringify(rawPort)} is not a port number`);
  const rawInputType = required("CLIPPER_INPUT_TYPE");
  let inputType: InputType;
  try {
    inputType = parseInputType(rawInputType);
  } catch (err) {
    throw new RunnerConfigError(`CLIPPER_INPUT_TYPE: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    port,
    name: required("CLIPPER_MODEL_NAME"),
    version: required("CLIPPER_MODEL_VERSION"),
    inputType,
    modulePath: path.resolve(required("CLIPPER_MODEL_MODULE")),
  };
}

/** Imports a module whose default export is a model object or a predict function. */
export async function loadModel(modulePath: string): Promise<Model> {
  const mod = (await import(pathToFileURL(modulePath).href)) as { default?: unknown };
  const model = mod.default;
  if (typeof model === "function") return model as Model;
  if (typeof model === "object" && model !== null && typeof (model as { predict?: unknown }).predict === "function") return model as Model;
  throw new RunnerConfigError(
    `${modulePath}: the default export must be a function or an object with a predict method, not ${model === null ? "null" : typeof model}`,
  );
}
