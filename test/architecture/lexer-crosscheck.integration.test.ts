// The architecture test reads imports with its own lexer and the git index with its own reader,
// so that it starts no process. Here both are checked against the real thing, which does start
// processes: esbuild's parser on every source file of the repository, and `git ls-files`.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import * as esbuild from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import { isCheckedSource, REPO_ROOT, readGitIndex } from "./import-graph.js";
import { scanImports } from "./scan-imports.js";

const git = (cwd: string, ...args: string[]): string => execFileSync("git", args, { cwd, encoding: "utf8" });
const lsFiles = (cwd: string): string[] => [...new Set(git(cwd, "ls-files", "-z").split("\0").filter(Boolean))].sort();

describe("readGitIndex", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("lists what git ls-files lists in this repository", () => {
    expect(readGitIndex(REPO_ROOT)).toEqual(lsFiles(REPO_ROOT));
  });

  it.each([2, 3, 4])("reads index version %i", (version) => {
    const dir = mkdtempSync(join(tmpdir(), "clipper-git-index-"));
    dirs.push(dir);
    git(dir, "init", "-q");
    const paths = ["a.ts", "services/router/router.ts", "services/router/router-metrics.ts", "services/registry/x.ts", "zé/ü.ts"];
    for (const p of paths) {
      mkdirSync(join(dir, dirname(p)), { recursive: true });
      writeFileSync(join(dir, p), "");
    }
    git(dir, "add", ...paths.slice(0, -1));
    // An intent-to-add entry has extended flags, which only versions 3 and 4 can hold.
    git(dir, "add", ...(version >= 3 ? ["--intent-to-add"] : []), paths.at(-1) as string);
    git(dir, "update-index", "--index-version", String(version));
    expect(readFileSync(join(dir, ".git", "index")).readUInt32BE(4)).toBe(version);
    expect(readGitIndex(dir)).toEqual(lsFiles(dir));
  });
});

describe("scanImports", () => {
  it("finds the same runtime imports as esbuild's parser in every source file", async () => {
    const files = readGitIndex(REPO_ROOT).filter(isCheckedSource);
    const seen = new Map<string, string[]>(files.map((f) => [f, []]));
    // Every import is recorded and left external: each file is parsed once, nothing is bundled.
    const record: esbuild.Plugin = {
      name: "record-imports",
      setup(build) {
        build.onResolve({ filter: /.*/ }, (args) => {
          if (args.kind === "entry-point") return undefined;
          if (args.kind === "import-statement" || args.kind === "dynamic-import") {
            seen.get(relative(REPO_ROOT, args.importer))?.push(`${args.kind === "dynamic-import" ? "dynamic " : ""}${args.path}`);
          }
          return { path: args.path, external: true };
        });
      },
    };
    await esbuild.build({
      absWorkingDir: REPO_ROOT,
      entryPoints: files,
      bundle: true,
      write: false,
      outdir: "out",
      platform: "node",
      format: "esm",
      logLevel: "silent",
      plugins: [record],
      // As tsconfig.json: an import of values only used as types stays; `import type` goes.
      tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
    });
    expect([...seen.values()].flat().length).toBeGreaterThan(500); // esbuild did see the files
    for (const file of files) {
      const ours = scanImports(readFileSync(join(REPO_ROOT, file), "utf8"))
        .filter((f) => !f.typeOnly && f.kind !== "require")
        .map((f) => `${f.kind === "dynamic-import" ? "dynamic " : ""}${f.specifier}`);
      expect({ file, imports: ours.sort() }).toEqual({ file, imports: (seen.get(file) ?? []).sort() });
    }
  });
});
