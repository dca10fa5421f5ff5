import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { normalizedPackages, requirementName, tomlStringArray } from "./python-environments.js";

const pyproject = fs.readFileSync(path.resolve(import.meta.dirname, "..", "..", "sdk", "python", "pyproject.toml"), "utf8");

describe("python environment keys", () => {
  it("keys packages by their trimmed, de-duplicated, sorted specs", () => {
    expect(normalizedPackages([" six==1.15.0", "numpy==2.0.0", "six==1.15.0", "", "  "])).toEqual(["numpy==2.0.0", "six==1.15.0"]);
  });

  it("compares distribution names as PEP 503 does", () => {
    expect(requirementName("Typing_Extensions==4.0")).toBe("typing-extensions");
    expect(requirementName("zope.interface>=5")).toBe("zope-interface");
    expect(requirementName("numpy[extra]; python_version >= '3.10'")).toBe("numpy");
    expect(requirementName("pkg @ https://example.invalid/pkg.whl")).toBe("pkg");
  });

  it("reads the runtime's requirements from the SDK's pyproject.toml", () => {
    const dependencies = tomlStringArray(pyproject, "project", "dependencies");
    expect(dependencies).toContain("grpcio>=1.85.1");
    expect(dependencies.map(requirementName)).toEqual(expect.arrayContaining(["grpcio", "grpcio-health-checking", "protobuf", "cloudpickle", "numpy"]));
    expect(tomlStringArray(pyproject, "project.optional-dependencies", "observability").map(requirementName)).toContain("prometheus-client");
    // Another table's key of the same name is not read.
    expect(tomlStringArray('[a]\ndependencies = ["x"]\n[project]\nname = "p"\n', "project", "dependencies")).toEqual([]);
  });
});
