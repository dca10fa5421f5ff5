// The layout rules of docs/architecture.md ("What may import what") on the repository as it is:
// every tracked source file's imports (rules.ts), and no import cycles. This fails, listing every
// broken rule at once, until the imports are fixed; there is no list of exceptions.
import { describe, expect, it } from "vitest";
import { checkArchitecture, formatReport } from "./check.js";
import { repositoryImportGraph } from "./import-graph.js";

describe("the repository's imports", () => {
  const graph = repositoryImportGraph();

  it("are read from every tracked source file", () => {
    // A guard against a checker that reads nothing and so finds nothing.
    expect(graph.files).toContain("services/shared/index.ts");
    expect(graph.files).toContain("test/architecture/architecture.test.ts");
    expect(graph.files.some((f) => f.startsWith("gen/"))).toBe(false);
    expect(graph.edges).toContainEqual(
      expect.objectContaining({
        from: "test/architecture/architecture.test.ts",
        specifier: "./check.js",
        target: { type: "file", path: "test/architecture/check.ts" },
      }),
    );
  });

  it("follow the layout rules and form no cycle", () => {
    const violations = checkArchitecture(graph);
    if (violations.length > 0) expect.fail(formatReport(violations));
  });
});
