import { create, equals } from "@bufbuild/protobuf";
import { type Model, ModelResourcesSchema, ModelRuntimeSchema } from "../../gen/clipper/v1/resources_pb.js";
import { inputTypeName } from "../shared/index.js";

/**
 * How a registered version differs from a redeploy of it, in what a redeploy
 * may not change (its input type, runtime and resources); empty: the same version.
 */
export function deployDifferences(existing: Model, requested: Model): string[] {
  const differences: string[] = [];
  if (existing.inputType !== requested.inputType) {
    differences.push(`input_type is ${inputTypeName(existing.inputType)}, requested ${inputTypeName(requested.inputType)}`);
  }
  const was = existing.runtime?.kind;
  const now = requested.runtime?.kind;
  if (was?.case === "pythonClosure" && now?.case === "pythonClosure") {
    const [a, b] = [was.value, now.value];
    if (a.artifactDigest !== b.artifactDigest) {
      differences.push(`the pickled closure differs (artifact ${a.artifactDigest.slice(0, 12)}, requested ${b.artifactDigest.slice(0, 12)})`);
    }
    if (a.interpreter !== b.interpreter) differences.push(`interpreter is "${a.interpreter}", requested "${b.interpreter}"`);
    if (a.pythonVersion !== b.pythonVersion) differences.push(`python_version is "${a.pythonVersion}", requested "${b.pythonVersion}"`);
    if (a.packages.join(",") !== b.packages.join(",")) differences.push(`packages are [${a.packages.join(", ")}], requested [${b.packages.join(", ")}]`);
  } else if (was?.case === "javaClass" && now?.case === "javaClass") {
    const [a, b] = [was.value, now.value];
    if (a.jarDigest !== b.jarDigest) differences.push(`the jar differs (artifact ${a.jarDigest.slice(0, 12)}, requested ${b.jarDigest.slice(0, 12)})`);
    if (a.className !== b.className) differences.push(`class_name is "${a.className}", requested "${b.className}"`);
    if (a.jvmOptions.join(" ") !== b.jvmOptions.join(" "))
      differences.push(`jvm_options are [${a.jvmOptions.join(" ")}], requested [${b.jvmOptions.join(" ")}]`);
  } else if (was?.case === "rFunction" && now?.case === "rFunction") {
    const [a, b] = [was.value, now.value];
    if (a.artifactDigest !== b.artifactDigest)
      differences.push(`the R model differs (artifact ${a.artifactDigest.slice(0, 12)}, requested ${b.artifactDigest.slice(0, 12)})`);
    if (a.format !== b.format) differences.push(`format is "${a.format}", requested "${b.format}"`);
  } else if (was?.case !== now?.case) {
    differences.push(`runtime is ${was?.case ?? "unset"}, requested ${now?.case ?? "unset"}`);
  }
  if (
    differences.length === 0 &&
    !(existing.runtime !== undefined && requested.runtime !== undefined && equals(ModelRuntimeSchema, existing.runtime, requested.runtime))
  ) {
    differences.push(`its ${now?.case ?? "runtime"} runtime differs`);
  }
  const none = create(ModelResourcesSchema);
  if (!equals(ModelResourcesSchema, existing.resources ?? none, requested.resources ?? none)) {
    differences.push(`resources are ${describeResources(existing)}, requested ${describeResources(requested)}`);
  }
  return differences;
}

function describeResources(model: Model): string {
  const list = (entries: Record<string, string> | undefined) =>
    Object.entries(entries ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
  return `requests [${list(model.resources?.requests)}] limits [${list(model.resources?.limits)}]`;
}
