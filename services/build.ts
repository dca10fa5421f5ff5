/**
 * The services as they run: one JavaScript bundle per service under dist/,
 * built with esbuild from its main.ts (npm packages stay imports). Running a
 * service through tsx's loader instead costs it a quarter of its CPU per query
 * on the query path (bench/RESULTS.md, "Services run from bundles"), so
 * `clipper up`, the tests and the benchmarks start the bundles, and build them
 * first: a build takes well under a second, so there is no stale bundle to
 * forget. `node --import tsx services/<name>/main.ts` still works for
 * development.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";

export const BUNDLED_SERVICES = ["registry", "container-manager", "router", "gateway"] as const;
export type BundledService = (typeof BUNDLED_SERVICES)[number];

/**
 * The bundle of a service: dist/<name>/main.mjs, as deep in the repository as
 * services/<name>/main.ts, so paths a service derives from its own location
 * (the container-manager finds sdk/ that way) are the same either way.
 */
export function serviceBundle(repoRoot: string, name: BundledService): string {
  return path.join(repoRoot, "dist", name, "main.mjs");
}

/**
 * Node's arguments to run a service's bundle. Source maps are written but not
 * enabled: `--enable-source-maps` cost ~10% of throughput at 64 clients
 * (bench/RESULTS.md); `NODE_OPTIONS=--enable-source-maps` turns them on to
 * read stack traces against the TypeScript sources.
 */
export function serviceNodeArgs(repoRoot: string, name: BundledService): string[] {
  return [serviceBundle(repoRoot, name)];
}

const builds = new Map<string, Promise<void>>();

/**
 * Bundles every service (once per process and repository). Each file is
 * written aside and renamed into place, so a build running at the same time
 * in another process (parallel test files) never exposes a half-written one.
 */
export function buildServices(repoRoot: string): Promise<void> {
  let done = builds.get(repoRoot);
  if (done === undefined) {
    done = bundle(repoRoot);
    builds.set(repoRoot, done);
  }
  return done;
}

async function bundle(repoRoot: string): Promise<void> {
  const result = await build({
    absWorkingDir: repoRoot,
    entryPoints: BUNDLED_SERVICES.map((name) => ({ in: path.join("services", name, "main.ts"), out: path.join(name, "main") })),
    outdir: path.join(repoRoot, "dist"),
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    sourcemap: "linked",
    write: false,
    logLevel: "silent",
  });
  const suffix = `.${process.pid}.${Date.now()}.tmp`;
  for (const file of result.outputFiles) {
    mkdirSync(path.dirname(file.path), { recursive: true });
    writeFileSync(file.path + suffix, file.contents);
    renameSync(file.path + suffix, file.path);
  }
}
