// The checker on small synthetic trees, independent of the repository's current state: it finds
// what it must (so architecture.test.ts can fail) and nothing in comments, strings or templates.
import { describe, expect, it } from "vitest";
import { checkArchitecture, findCycles, formatReport } from "./check.js";
import { buildImportGraph, resolveSpecifier } from "./import-graph.js";
import { matchPath } from "./path-pattern.js";
import { scanImports } from "./scan-imports.js";

const tree = (files: Record<string, string>) => buildImportGraph(new Map(Object.entries(files)));
const messages = (files: Record<string, string>) => checkArchitecture(tree(files)).map((v) => v.message);
const rules = (files: Record<string, string>) => checkArchitecture(tree(files)).map((v) => `${v.file} ${v.rule}`);
const specifiers = (source: string) => scanImports(source).map((f) => f.specifier);

describe("scanImports", () => {
  it("finds every form that names a module, with its kind and whether it is type-only", () => {
    const source = [
      'import a from "m1";',
      'import * as ns from "m2";',
      'import b, { c, type d as e } from "m3";',
      'import "m4";',
      'import type { T } from "m5";',
      'import type U from "m6";',
      'export { f } from "m7";',
      'export * from "m8";',
      'export * as g from "m9";',
      'export type { V } from "m10";',
      'const h = await import("m11");',
      'type W = typeof import("m12");',
      'const i = require("m13");',
      'import j = require("m14");',
      'import {\n  k,\n  l,\n} from "m15";',
      "const m = import(`m16`);",
      'import { "a-b" as n } from "m17";',
    ].join("\n");
    expect(scanImports(source).map((f) => [f.specifier, f.kind, f.typeOnly, f.line])).toEqual([
      ["m1", "import", false, 1],
      ["m2", "import", false, 2],
      ["m3", "import", false, 3],
      ["m4", "import", false, 4],
      ["m5", "import", true, 5],
      ["m6", "import", true, 6],
      ["m7", "export-from", false, 7],
      ["m8", "export-from", false, 8],
      ["m9", "export-from", false, 9],
      ["m10", "export-from", true, 10],
      ["m11", "dynamic-import", false, 11],
      ["m12", "dynamic-import", true, 12],
      ["m13", "require", false, 13],
      ["m14", "import", false, 14],
      ["m15", "import", false, 18],
      ["m16", "dynamic-import", false, 19],
      ["m17", "import", false, 20],
    ]);
  });

  it("reads `import type from` and `import type, {}` as a default import named type", () => {
    expect(scanImports('import type from "a";\nimport type, { x } from "b";').map((f) => f.typeOnly)).toEqual([false, false]);
  });

  it("ignores import-like text in comments, strings, templates and regular expressions", () => {
    const source = [
      '// import a from "c1";',
      '/* import b from "c2";',
      '   export * from "c3"; */',
      "const s = \"import c from 'c4'\";",
      "const t = 'require(\"c5\")';",
      'const u = `import d from "c6";',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
      '  ${"x"} export * from "c7"`;',
      'const r = /import e from "c8"/g;',
      "const q = x / 2; const z = y / 3; // not a regex",
      'const ok = "after all that"; import real from "r1";',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
      'const nested = `${`${await import("r2")}`} import f from "c9"`;',
      'const cls = /[/"\']/; import again from "r3";',
      "return /'/.test(s) && import('r4');",
    ].join("\n");
    expect(specifiers(source)).toEqual(["r1", "r2", "r3", "r4"]);
  });

  it("ignores import.meta, properties named import or require, and imports of no literal", () => {
    const source = [
      "const url = import.meta.url;",
      'const o = { import: "x1", require: "x2" };',
      'o.import("x3"); o.require("x4"); require.resolve("x5");',
      "await import(moduleName);",
      "function require(name: string) {}",
      "export { a, b };",
      "export type X = { from: string };",
    ].join("\n");
    expect(specifiers(source)).toEqual([]);
  });

  it("keeps going after a shebang and a division that looks like a regex start", () => {
    expect(specifiers('#!/usr/bin/env node\nconst a = b / c;\nimport x from "m";')).toEqual(["m"]);
  });
});

describe("resolveSpecifier", () => {
  const files = new Set(["services/router/router.ts", "cli/main.ts", "gen/clipper/v1/x_pb.ts", "a/b.mts", "data.json"]);
  const exists = (p: string) => files.has(p);

  it("resolves TypeScript's .js to the .ts it names, and other relative paths as written", () => {
    expect(resolveSpecifier("services/gateway/gateway.ts", "../router/router.js", exists)).toEqual({
      type: "file",
      path: "services/router/router.ts",
    });
    expect(resolveSpecifier("cli/clipper.mjs", "./main.ts", exists)).toEqual({ type: "file", path: "cli/main.ts" });
    expect(resolveSpecifier("a/c.ts", "./b.mjs", exists)).toEqual({ type: "file", path: "a/b.mts" });
    expect(resolveSpecifier("a/c.ts", "../data.json", exists)).toEqual({ type: "file", path: "data.json" });
    expect(resolveSpecifier("a/c.ts", "./missing.js", exists)).toEqual({ type: "unresolved", path: "a/missing.js" });
    expect(resolveSpecifier("a/c.ts", "../../outside.js", exists)).toEqual({ type: "unresolved", path: "../outside.js" });
  });

  it("tells builtins from packages", () => {
    expect(resolveSpecifier("a.ts", "node:fs", exists)).toEqual({ type: "builtin", name: "node:fs" });
    expect(resolveSpecifier("a.ts", "child_process", exists)).toEqual({ type: "builtin", name: "node:child_process" });
    expect(resolveSpecifier("a.ts", "@grpc/grpc-js/build/src/x.js", exists)).toEqual({ type: "package", name: "@grpc/grpc-js" });
    expect(resolveSpecifier("a.ts", "tsx/esm/api", exists)).toEqual({ type: "package", name: "tsx" });
  });
});

describe("matchPath", () => {
  it("matches segments, any depth and captures", () => {
    expect(matchPath("services/{svc}/**", "services/router/policies/exp3.ts")).toEqual({ svc: "router" });
    expect(matchPath("services/{svc}/**", "services/build.ts")).toBeUndefined();
    expect(matchPath("services/*/index.ts", "services/router/index.ts")).toEqual({});
    expect(matchPath("services/*/index.ts", "services/router/policies/index.ts")).toBeUndefined();
    expect(matchPath("services/**/*.test.ts", "services/router/a.test.ts")).toEqual({});
    expect(matchPath("**/*.integration.test.ts", "cli/a.integration.test.ts")).toEqual({});
    expect(matchPath("services/{svc=edge|hub}/**", "services/edge/a.ts")).toEqual({ svc: "edge" });
    expect(matchPath("services/{svc=edge|hub}/**", "services/router/a.ts")).toBeUndefined();
  });
});

describe("checkArchitecture", () => {
  it("names the file, the import as written, its target and the rule when a service reaches into another", () => {
    const found = messages({
      "services/gateway/gateway.ts": 'import { x } from "../shared/index.js";\nimport { createRouterCore } from "../router/router.js";\n',
      "services/shared/index.ts": "",
      "services/router/router.ts": "export const createRouterCore = 1;",
    });
    expect(found).toEqual([
      'services/gateway/gateway.ts imports "../router/router.js" (services/router/router.ts): a service imports only its own folder, services/shared/index.ts and gen/ (rule: service-boundary, line 2)',
    ]);
  });

  it("lets a service import its own folder, the shared front door, gen/ and packages, and nothing else of shared", () => {
    expect(
      rules({
        "services/router/a.ts": [
          'import "./policies/b.js";',
          'import "../shared/index.js";',
          'import "../../gen/clipper/v1/x_pb.js";',
          'import "@grpc/grpc-js";',
          'import "node:http";',
          'import "../shared/binary-codec.js";',
        ].join("\n"),
        "services/router/policies/b.ts": "",
        "services/shared/index.ts": "",
        "services/shared/binary-codec.ts": "",
        "gen/clipper/v1/x_pb.ts": "",
      }),
    ).toEqual(["services/router/a.ts service-boundary"]);
  });

  it("lets composition roots and tests beside a service use other services' front doors, never deeper", () => {
    const found = rules({
      "services/gateway/main.ts": 'import "../router/index.js";\nimport "../router/router.js";\nimport "../shared/index.js";',
      "services/edge/wiring.ts": 'import "../router/index.js";\nimport "../gateway/index.js";\nimport "./local.js";',
      "services/edge/local.ts": 'import "../registry/registry.js";',
      "services/gateway/gateway.test.ts": [
        'import "../router/index.js";',
        'import "../router/testing/fake-router.js";',
        'import "../shared/testing/clock.js";',
        'import "../router/router.js";',
      ].join("\n"),
      "services/router/index.ts": "",
      "services/router/router.ts": "",
      "services/router/testing/fake-router.ts": "",
      "services/gateway/index.ts": "",
      "services/registry/registry.ts": "",
      "services/shared/index.ts": "",
      "services/shared/testing/clock.ts": "",
    });
    expect(found).toEqual([
      "services/edge/local.ts composition-root",
      "services/gateway/gateway.test.ts service-tests",
      "services/gateway/main.ts composition-root",
    ]);
  });

  it("keeps shared beneath the services and the bundler script out of them", () => {
    expect(
      rules({
        "services/shared/a.ts": 'import "./b.js";\nimport "../router/router.js";',
        "services/shared/b.ts": "",
        "services/router/router.ts": "",
        "services/build.ts": 'import "esbuild";\nimport "./shared/index.js";',
        "services/shared/index.ts": "",
      }),
    ).toEqual(["services/build.ts build-script", "services/shared/a.ts shared-boundary"]);
  });

  it("reports an SDK file importing services or the CLI", () => {
    const found = messages({
      "sdk/typescript/src/model.ts": 'import { inputCount } from "../../../services/shared/index.js";\nimport "@bufbuild/protobuf";',
      "sdk/typescript/src/cli-use.ts": 'import type { X } from "../../../cli/output.js";',
      "services/shared/index.ts": "",
      "cli/output.ts": "",
    });
    expect(found).toEqual([
      'sdk/typescript/src/cli-use.ts imports "../../../cli/output.js" (cli/output.ts): the SDKs are packages of their own: they never import services/ or cli/ (rule: sdk-independent, line 1, type-only import)',
      'sdk/typescript/src/model.ts imports "../../../services/shared/index.js" (services/shared/index.ts): the SDKs are packages of their own: they never import services/ or cli/ (rule: sdk-independent, line 1)',
    ]);
  });

  it("lets the CLI, tests and benchmarks use front doors, testing/ folders and build.ts only", () => {
    const found = rules({
      "cli/main.ts": 'import "./output.js";\nimport "../services/build.js";\nimport "../services/router/index.js";\nimport "../services/router/config.js";',
      "cli/output.ts": "",
      "test/e2e.test.ts": [
        'import "../services/registry/index.js";',
        'import "../services/registry/testing/redis-server.js";',
        'import "../services/build.js";',
        'import "../sdk/typescript/src/index.js";',
        'import "./system.js";',
        'import "../services/registry/registry.js";',
        'import "../sdk/typescript/src/model.js";',
      ].join("\n"),
      "test/system.ts": "",
      "bench/codec.ts": 'import "../services/shared/binary-codec.js";',
      "services/build.ts": "",
      "services/router/index.ts": "",
      "services/router/config.ts": "",
      "services/registry/index.ts": "",
      "services/registry/registry.ts": "",
      "services/registry/testing/redis-server.ts": "",
      "services/shared/binary-codec.ts": "",
      "sdk/typescript/src/index.ts": "",
      "sdk/typescript/src/model.ts": "",
    });
    expect(found).toEqual([
      "bench/codec.ts test-front-doors",
      "cli/main.ts cli-front-doors",
      "test/e2e.test.ts test-front-doors",
      "test/e2e.test.ts test-front-doors",
    ]);
  });

  it("keeps process and socket modules and composition roots out of unit tests (type imports are fine)", () => {
    const found = rules({
      "services/router/a.test.ts": 'import { spawn } from "node:child_process";\nimport type { Server } from "node:http";\nimport "./main.js";',
      "services/router/main.ts": "",
      "services/router/a.integration.test.ts": 'import "node:child_process";\nimport "node:net";\nimport "./main.js";',
      "cli/b.test.ts": 'import cluster from "cluster";',
      "services/router/c.test.ts": 'import { readFileSync } from "node:fs";',
    });
    expect(found).toEqual([
      "cli/b.test.ts unit-tests-stay-unit",
      "services/router/a.test.ts unit-tests-stay-unit",
      "services/router/a.test.ts unit-tests-stay-unit",
    ]);
  });

  it("reports a relative import that names no file", () => {
    expect(messages({ "bench/models/noop.ts": 'import type { Model } from "../../sdk/typescript/model.js";' })).toEqual([
      'bench/models/noop.ts imports "../../sdk/typescript/model.js" (no file sdk/typescript/model.js): a relative import names a file of the repository (rule: resolvable, line 1, type-only import)',
    ]);
  });

  it("reports a cycle as the chain of its files and the imports that close it, type-only links included", () => {
    const found = messages({
      "services/router/query-processor.ts": 'import type { RouterMetrics } from "./router-metrics.js";',
      "services/router/router-metrics.ts": 'import type { QueryObserver } from "./query-processor.js";',
    });
    expect(found).toEqual([
      'import cycle services/router/query-processor.ts → services/router/router-metrics.ts → services/router/query-processor.ts: services/router/query-processor.ts imports "./router-metrics.js" (line 1, type-only import); services/router/router-metrics.ts imports "./query-processor.js" (line 1, type-only import): modules in a cycle can be neither understood, tested nor loaded alone (type-only imports count too) (rule: no-cycles)',
    ]);
  });

  it("lists every violation in one report, grouped by rule", () => {
    const violations = checkArchitecture(
      tree({
        "services/gateway/gateway.ts": 'import "../router/router.js";\nimport "../registry/registry.js";',
        "services/router/router.ts": "",
        "services/registry/registry.ts": "",
        "sdk/a.ts": 'import "./b.js";\nimport "../services/router/router.js";',
        "sdk/b.ts": 'import "./a.js";',
      }),
    );
    const report = formatReport(violations);
    expect(report.split("\n")).toEqual([
      '4 imports break the layout rules (docs/architecture.md, "What may import what"):',
      "",
      "service-boundary (2):",
      expect.stringContaining('services/gateway/gateway.ts imports "../router/router.js" (services/router/router.ts)'),
      expect.stringContaining('services/gateway/gateway.ts imports "../registry/registry.js" (services/registry/registry.ts)'),
      "",
      "sdk-independent (1):",
      expect.stringContaining('sdk/a.ts imports "../services/router/router.js"'),
      "",
      "no-cycles (1):",
      expect.stringContaining("import cycle sdk/a.ts → sdk/b.ts → sdk/a.ts"),
    ]);
  });
});

describe("findCycles", () => {
  it("finds each elementary cycle once, self-imports included", () => {
    const graph = tree({
      "a.ts": 'import "./b.js";\nimport "./c.js";',
      "b.ts": 'import "./a.js";\nimport "./c.js";',
      "c.ts": 'import "./a.js";',
      "d.ts": 'import "./d.js";\nimport "./a.js";',
      "e.ts": 'import "./a.js";',
    });
    expect(findCycles(graph).cycles.map((c) => c.files.join(" "))).toEqual(["a.ts b.ts", "a.ts b.ts c.ts", "a.ts c.ts", "d.ts"]);
  });

  it("stops listing at 20 cycles in one component and says so", () => {
    // Every file imports every other: far more than 20 elementary cycles.
    const names = ["a", "b", "c", "d", "e", "f"];
    const files = Object.fromEntries(
      names.map((n) => [
        `${n}.ts`,
        names
          .filter((m) => m !== n)
          .map((m) => `import "./${m}.js";`)
          .join("\n"),
      ]),
    );
    const { cycles, truncated } = findCycles(tree(files));
    expect(cycles).toHaveLength(20);
    expect(truncated).toEqual([names.map((n) => `${n}.ts`)]);
    expect(new Set(cycles.map((c) => c.files.join(" "))).size).toBe(20);
  });
});
