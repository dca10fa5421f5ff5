import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { type Application, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { type ConfigView, modelKey, notFound } from "../../shared/index.js";
import { DEFAULT_OUTPUT_NAME, declaredOutput, inputDatatype, OUTPUT_NAME } from "./tensors.js";

/** The name ModelMetadata gives the one input tensor (any name is accepted on infer). */
export const INPUT_NAME = "input";

/** What ServerMetadata answers. */
export const SERVER_NAME = "clipper";
/** The repository's package.json version (a unit test holds them equal): services may not import package.json. */
export const SERVER_VERSION = "0.1.0";
/** The OIP extensions served: Triton's binary tensor data over HTTP, and request parameters. */
export const SERVER_EXTENSIONS = ["binary_tensor_data", "parameters"] as const;

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** The versions an application answers with: those of its linked models, "model:version" ordered by model then version. */
function linkedModelVersions(view: ConfigView, app: Application): Array<{ model: string; version: string }> {
  const linked = new Set(app.linkedModels);
  return [...view.models.values()]
    .filter((m) => linked.has(m.name))
    .map((m) => ({ model: m.name, version: m.version }))
    .sort((a, b) => a.model.localeCompare(b.model) || a.version.localeCompare(b.version, undefined, { numeric: true }));
}

/**
 * An OIP version of an application names a version of its linked models
 * (the router asks each linked model at that version). NOT_FOUND, listing
 * what exists, when none of them has it.
 */
export function checkVersion(view: ConfigView, app: Application, version: string): void {
  if (version === "") return;
  const all = linkedModelVersions(view, app);
  if (all.some((v) => v.version === version)) return;
  const known = all.length === 0 ? "it has no linked model" : `its linked models' versions are ${all.map((v) => `${v.model}:${v.version}`).join(", ")}`;
  throw notFound(`model "${app.name}" has no version "${version}": ${known}`);
}

export function modelMetadata(view: ConfigView, app: Application, version: string): ModelMetadata {
  checkVersion(view, app, version);
  const versions = [...new Set(linkedModelVersions(view, app).map((v) => v.version))];
  const numeric = app.inputType === InputType.INTS || app.inputType === InputType.FLOATS || app.inputType === InputType.DOUBLES;
  return {
    name: app.name,
    versions: version === "" ? versions : [version],
    platform: SERVER_NAME,
    inputs: [{ name: INPUT_NAME, datatype: inputDatatype(app.inputType), shape: numeric ? [-1, -1] : [-1] }],
    outputs: [
      { name: OUTPUT_NAME, ...declaredOutput(app.defaultOutput) },
      { name: DEFAULT_OUTPUT_NAME, datatype: "BOOL", shape: [-1] },
    ],
  };
}

/**
 * Ready when a linked model at the asked version (else its current one) has a
 * ready replica: then a query can get a model's answer, not only the default.
 */
export function modelReadiness(view: ConfigView, app: Application, version: string): { ready: boolean; cause: string } {
  checkVersion(view, app, version);
  if (app.linkedModels.length === 0) return { ready: false, cause: `application "${app.name}" has no linked model: it answers only its default output` };
  const waiting: string[] = [];
  for (const model of app.linkedModels) {
    const v = version === "" ? view.currentVersions.get(model) : version;
    if (v === undefined) {
      waiting.push(`${model} has no current version`);
      continue;
    }
    const replicas = view.replicaSets.get(modelKey(model, v))?.replicas ?? [];
    if (replicas.some((r) => r.state === ReplicaState.READY)) return { ready: true, cause: "" };
    waiting.push(`${model}:${v} has no ready replica`);
  }
  return { ready: false, cause: `model "${app.name}" is not ready: ${waiting.join("; ")}` };
}

/** Triton's ModelConfig, the part perf_analyzer reads: data types by Triton's names (TYPE_FP64, TYPE_STRING for BYTES). */
export interface ModelConfig {
  name: string;
  platform: string;
  backend: string;
  /** 0: the dims are whole shapes, batch dimension included, as in ModelMetadata. */
  max_batch_size: number;
  input: Array<{ name: string; data_type: string; dims: number[] }>;
  output: Array<{ name: string; data_type: string; dims: number[] }>;
}

const tritonDataType = (datatype: string) => (datatype === "BYTES" ? "TYPE_STRING" : `TYPE_${datatype}`);

export function modelConfig(view: ConfigView, app: Application, version: string): ModelConfig {
  const metadata = modelMetadata(view, app, version);
  const tensors = (list: TensorMetadata[]) => list.map((t) => ({ name: t.name, data_type: tritonDataType(t.datatype), dims: t.shape }));
  return {
    name: metadata.name,
    platform: SERVER_NAME,
    backend: SERVER_NAME,
    max_batch_size: 0,
    input: tensors(metadata.inputs),
    output: tensors(metadata.outputs),
  };
}

/** Triton's repository index: every application, READY or UNAVAILABLE with the reason (`readyOnly`: only the ready ones). */
export function repositoryIndex(view: ConfigView, readyOnly: boolean): Array<{ name: string; version: string; state: string; reason: string }> {
  const index = [...view.applications.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((app) => {
      const readiness = modelReadiness(view, app, "");
      return { name: app.name, version: "", state: readiness.ready ? "READY" : "UNAVAILABLE", reason: readiness.cause };
    });
  return readyOnly ? index.filter((m) => m.state === "READY") : index;
}
