import { existsSync, readFileSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type FoundImport, scanImports } from "./scan-imports.js";

/** What an import resolves to. Repository paths are relative to the root, with `/`. */
export type Target =
  | { readonly type: "file"; readonly path: string }
  | { readonly type: "builtin"; readonly name: string } // always "node:<name>"
  | { readonly type: "package"; readonly name: string } // "@scope/name" or "name"
  | { readonly type: "unresolved"; readonly path: string } // a relative import naming no file
  | { readonly type: "other" }; // an absolute path or URL

export interface ImportEdge extends FoundImport {
  readonly from: string;
  readonly target: Target;
}

export interface ImportGraph {
  /** The files whose imports were read. */
  readonly files: readonly string[];
  /** Every import of those files, in file order then source order. */
  readonly edges: readonly ImportEdge[];
}

/** Source files: TypeScript and JavaScript modules. */
export const SOURCE_FILE = /\.(ts|mts|cts|mjs|cjs)$/;

/** Generated code (never edited, checked for drift elsewhere) and dependencies are not read. */
export function isCheckedSource(path: string): boolean {
  return SOURCE_FILE.test(path) && !/(^|\/)(gen|node_modules)\//.test(path);
}

/** How a relative specifier may name a file: TypeScript writes the `.js` of the `.ts` it imports. */
function candidates(base: string): string[] {
  const swap: Record<string, string[]> = {
    ".js": [".ts", ".tsx", ".d.ts"],
    ".mjs": [".mts", ".d.mts"],
    ".cjs": [".cts", ".d.cts"],
    ".jsx": [".tsx"],
  };
  const ext = posix.extname(base);
  const stem = base.slice(0, base.length - ext.length);
  const out = (swap[ext] ?? []).map((e) => stem + e);
  out.push(base);
  if (ext === "") out.push(`${base}.ts`, `${base}.tsx`, `${base}.d.ts`, `${base}.js`, `${base}/index.ts`, `${base}/index.js`);
  return out;
}

/** Resolves one specifier written in `from`; `exists` says whether a repository path is a file. */
export function resolveSpecifier(from: string, specifier: string, exists: (path: string) => boolean): Target {
  if (specifier.startsWith("./") || specifier.startsWith("../") || specifier === "." || specifier === "..") {
    const base = posix.normalize(posix.join(posix.dirname(from), specifier));
    if (base.startsWith("../")) return { type: "unresolved", path: base };
    for (const c of candidates(base)) if (exists(c)) return { type: "file", path: c };
    return { type: "unresolved", path: base };
  }
  if (specifier.startsWith("node:")) return { type: "builtin", name: specifier };
  if (isBuiltin(specifier)) return { type: "builtin", name: `node:${specifier}` };
  if (specifier.startsWith("/") || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) return { type: "other" };
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] as string);
  return { type: "package", name };
}

/**
 * The import graph of `sources` (path → text). `exists` answers for resolution targets that are
 * not among the sources (generated code, JSON, files not read); by default only the sources exist.
 */
export function buildImportGraph(sources: ReadonlyMap<string, string>, exists: (path: string) => boolean = (p) => sources.has(p)): ImportGraph {
  const files = [...sources.keys()].sort();
  const edges: ImportEdge[] = [];
  const isFile = (p: string): boolean => sources.has(p) || exists(p);
  for (const from of files) {
    for (const found of scanImports(sources.get(from) as string)) {
      edges.push({ ...found, from, target: resolveSpecifier(from, found.specifier, isFile) });
    }
  }
  return { files, edges };
}

/** The directory holding a repository's index: `.git`, or where a worktree's `.git` file points. */
function gitDir(root: string): string {
  const dotGit = join(root, ".git");
  if (statSync(dotGit).isDirectory()) return dotGit;
  const m = /^gitdir:\s*(.+?)\s*$/m.exec(readFileSync(dotGit, "utf8"));
  if (!m) throw new Error(`${dotGit} is neither a directory nor a gitdir file`);
  return resolve(root, m[1] as string);
}

/**
 * The paths tracked by git (its index, including what is staged), read from `.git/index`
 * directly so that no `git` process is started. Index versions 2, 3 and 4.
 */
export function readGitIndex(root: string): string[] {
  const buf = readFileSync(join(gitDir(root), "index"));
  if (buf.toString("latin1", 0, 4) !== "DIRC") throw new Error("not a git index");
  const version = buf.readUInt32BE(4);
  if (version < 2 || version > 4) throw new Error(`git index version ${version} is not supported`);
  const count = buf.readUInt32BE(8);
  const paths = new Set<string>();
  let off = 12;
  let previous = "";
  for (let e = 0; e < count; e++) {
    const start = off;
    const mode = buf.readUInt32BE(start + 24);
    const flags = buf.readUInt16BE(start + 60);
    let p = start + 62;
    if (version >= 3 && flags & 0x4000) p += 2; // extended flags
    let path: string;
    if (version === 4) {
      // The path is the previous one less N trailing bytes, plus a NUL-terminated suffix.
      let c = buf[p++] as number;
      let strip = c & 127;
      while (c & 128) {
        c = buf[p++] as number;
        strip = ((strip + 1) << 7) | (c & 127);
      }
      const end = buf.indexOf(0, p);
      const prefix = Buffer.from(previous, "utf8");
      path = prefix.subarray(0, prefix.length - strip).toString("utf8") + buf.toString("utf8", p, end);
      off = end + 1;
    } else {
      const end = buf.indexOf(0, p);
      path = buf.toString("utf8", p, end);
      off = start + ((end - start + 8) & ~7); // NUL-padded to a multiple of 8 bytes
    }
    previous = path;
    const type = mode & 0o170000;
    if (type === 0o100000 || type === 0o120000) paths.add(path); // files and symlinks, not gitlinks or sparse dirs
  }
  return [...paths].sort();
}

/** The repository's root: two levels above this file. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The import graph of the repository at `root`: every tracked source file (see isCheckedSource)
 * present in the working tree, with its current text. Imports resolve to tracked files and to
 * files present on disk (a colleague's new file not yet added).
 */
export function repositoryImportGraph(root: string = REPO_ROOT): ImportGraph {
  const tracked = readGitIndex(root);
  const trackedSet = new Set(tracked);
  const sources = new Map<string, string>();
  for (const path of tracked) {
    if (!isCheckedSource(path)) continue;
    let text: string;
    try {
      text = readFileSync(join(root, path), "utf8");
    } catch {
      continue; // deleted in the working tree, not yet in the index
    }
    sources.set(path, text);
  }
  const exists = (p: string): boolean => {
    if (trackedSet.has(p)) return existsSync(join(root, p));
    try {
      return statSync(join(root, p)).isFile();
    } catch {
      return false;
    }
  };
  return buildImportGraph(sources, exists);
}
