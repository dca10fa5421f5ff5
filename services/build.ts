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
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";

/** The services of the prediction path (and of the Kubernetes images). */
export const BUNDLED_SERVICES = ["registry", "container-manager", "router", "gateway"] as const;
/** The operator's console runs beside them under `clipper up`, bundled the same way. */
export const CONSOLE_SERVICE = "console";
export type BundledService = (typeof BUNDLED_SERVICES)[number] | typeof CONSOLE_SERVICE;

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
    entryPoints: [...BUNDLED_SERVICES, CONSOLE_SERVICE].map((name) => ({ in: path.join("services", name, "main.ts"), out: path.join(name, "main") })),
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

/** The console's built page, which dist/console/main.mjs serves. */
export function consoleUiDir(repoRoot: string): string {
  return path.join(repoRoot, "dist", "console-ui");
}

const STAMP = ".sources-sha256";
const uiBuilds = new Map<string, Promise<void>>();

/**
 * Builds the console's page (console/, with Vite) into dist/console-ui unless
 * the build there was made from the same sources: the sha256 of every source
 * file and of package-lock.json (the versions of Vite and uPlot) is kept
 * beside it. Once per process and repository. Built aside and renamed into
 * place, so a console starting meanwhile never reads half a build.
 */
export function buildConsoleUi(repoRoot: string): Promise<void> {
  let done = uiBuilds.get(repoRoot);
  if (done === undefined) {
    done = bundleConsoleUi(repoRoot);
    uiBuilds.set(repoRoot, done);
  }
  return done;
}

/** The files the page is built from, in a stable order. */
function consoleSources(repoRoot: string): string[] {
  const root = path.join(repoRoot, "console");
  const files = ["index.html", "vite.config.ts"].map((f) => path.join(root, f));
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir).sort()) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (!entry.endsWith(".test.ts")) files.push(full);
    }
  };
  walk(path.join(root, "src"));
  // The page imports the API's types from the console service.
  files.push(path.join(repoRoot, "services", "console", "console-api.ts"), path.join(repoRoot, "package-lock.json"));
  return files;
}

async function bundleConsoleUi(repoRoot: string): Promise<void> {
  const hash = createHash("sha256");
  for (const file of consoleSources(repoRoot)) hash.update(path.relative(repoRoot, file)).update("\0").update(readFileSync(file)).update("\0");
  const digest = hash.digest("hex");
  const outDir = consoleUiDir(repoRoot);
  let built = "";
  try {
    built = readFileSync(path.join(outDir, STAMP), "utf8").trim();
  } catch {
    // no build yet
  }
  if (built === digest) return;
  const suffix = `.${process.pid}.${Date.now()}.tmp`;
  const temp = outDir + suffix;
  // Vite is loaded only when a build is due: every other start stays as fast as before.
  const vite = await import("vite");
  await vite.build({
    root: path.join(repoRoot, "console"),
    configFile: path.join(repoRoot, "console", "vite.config.ts"),
    build: { outDir: temp, emptyOutDir: true },
    logLevel: "warn",
  });
  writeFileSync(path.join(temp, STAMP), `${digest}\n`);
  const old = `${outDir}.old${suffix}`;
  try {
    renameSync(outDir, old);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  try {
    renameSync(temp, outDir);
  } catch (err) {
    // Another process put its build of the same sources in place first.
    if ((err as NodeJS.ErrnoException).code !== "ENOTEMPTY" && (err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    rmSync(temp, { recursive: true, force: true });
  }
  rmSync(old, { recursive: true, force: true });
}
