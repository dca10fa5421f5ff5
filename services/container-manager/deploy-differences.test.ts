import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelResourcesSchema, ModelSchema } from "../../gen/clipper/v1/resources_pb.js";
import { deployDifferences } from "./deploy-differences.js";

const closure = (value: { artifactDigest?: string; interpreter?: string; pythonVersion?: string; packages?: string[] }, inputType = InputType.DOUBLES) =>
  create(ModelSchema, {
    name: "m",
    version: "1",
    inputType,
    runtime: { kind: { case: "pythonClosure", value: { artifactDigest: "a".repeat(64), interpreter: "/env/bin/python", pythonVersion: "3.11", ...value } } },
  });

describe("deployDifferences", () => {
  it("finds none for the same version deployed again (a re-run script), whatever its replica count", () => {
    expect(deployDifferences(closure({}), { ...closure({}), desiredReplicas: 3 })).toEqual([]);
  });

  it("names resources that differ, an empty declaration being none", () => {
    const withResources = (requests: Record<string, string>) => ({ ...closure({}), resources: create(ModelResourcesSchema, { requests }) });
    expect(deployDifferences(closure({}), withResources({}))).toEqual([]);
    expect(deployDifferences(withResources({ cpu: "1" }), withResources({ cpu: "2" }))).toEqual([
      "resources are requests [cpu=1] limits [], requested requests [cpu=2] limits []",
    ]);
  });

  it("names each field of a closure that differs", () => {
    expect(
      deployDifferences(
        closure({ packages: ["numpy==2.4.6"] }),
        closure({ artifactDigest: "b".repeat(64), interpreter: "/other/bin/python", pythonVersion: "3.12", packages: [] }, InputType.FLOATS),
      ),
    ).toEqual([
      "input_type is doubles, requested floats",
      "the pickled closure differs (artifact aaaaaaaaaaaa, requested bbbbbbbbbbbb)",
      'interpreter is "/env/bin/python", requested "/other/bin/python"',
      'python_version is "3.11", requested "3.12"',
      "packages are [numpy==2.4.6], requested []",
    ]);
  });

  it("names another kind of runtime, or one whose other fields differ", () => {
    const command = (argv: string[]) =>
      create(ModelSchema, { name: "m", version: "1", inputType: InputType.DOUBLES, runtime: { kind: { case: "command", value: { argv } } } });
    expect(deployDifferences(closure({}), command(["./serve"]))).toEqual(["runtime is pythonClosure, requested command"]);
    expect(deployDifferences(command(["./serve"]), command(["./serve", "--fast"]))).toEqual(["its command runtime differs"]);
  });
});
