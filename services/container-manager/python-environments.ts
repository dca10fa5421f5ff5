import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Model, PythonClosureRuntime } from "../../gen/clipper/v1/resources_pb.js";
import { deadlineExceeded, failedPrecondition, type Logger, resourceExhausted } from "../shared/index.js";
import { findExecutable } from "./backends/launch.js";

/** What builds the environments: uv when found (on PATH, or beside --python), else the base interpreter's venv and pip. */
export type PythonEnvironmentInstaller = "auto" | "uv" | "pip";

/** The defaults of the container-manager's --python-envs-* flags (main.ts) and of the tests. */
export const DEFAULT_PYTHON_ENVIRONMENTS = {
  installer: "auto" as PythonEnvironmentInstaller,
  maxEnvironments: 16,
  maxBytes: 8 * 1024 * 1024 * 1024,
  buildTimeoutMs: 300_000,
  progressIntervalMs: 10_000,
};

export interface PythonEnvironmentsOptions {
  /** The cache: one directory per environment and, beside it, the record that publishes it. */
  directory: string;
  /** The SDK's pyproject.toml: its dependencies and `observability` extra go into every environment (the runtime itself is on PYTHONPATH). */
  sdkPyproject: string;
  /** The container-manager's --python: a base interpreter to build from, and the Python version of a model that records none. */
  defaultPython: string;
  installer?: PythonEnvironmentInstaller;
  maxEnvironments?: number;
  /** Bytes of all environments together (their files' sizes; files uv hard-links from its cache count in full). */
  maxBytes?: number;
  buildTimeoutMs?: number;
  progressIntervalMs?: number;
  logger: Logger;
  /** The model versions registered now: the environments of those that want replicas are never evicted. */
  models?: () => Iterable<Model>;
  /** Called when a background preparation (prepareInBackground) has made an interpreter ready, to reconcile again. */
  onPrepared?: () => void;
  /** Where PATH, HOME and the installers' own settings (PIP_*, UV_*, proxies) come from. */
  parentEnv?: NodeJS.ProcessEnv;
}

/** The Python that runs a closure, and a line for the replica's log saying why. */
export interface PreparedInterpreter {
  path: string;
  note: string;
  /** Extra environment for the replica. */
  env: Record<string, string>;
}

export interface PreparedLease {
  interpreter: PreparedInterpreter;
  /** Lets the environment be evicted again once the deploy has registered the model (whose replicas then keep it). */
  release(): void;
}

interface EnvironmentRecord {
  key: string;
  /** The environment's directory, a sibling of the record. */
  directory: string;
  pythonVersion: string;
  packages: string[];
  runtimeRequirements: string[];
  installer: "uv" | "pip";
  builtAtMs: number;
  buildMs: number;
  sizeBytes: number;
}

interface EnvironmentPlan {
  key: string;
  pythonVersion: string;
  packages: string[];
  runtimeRequirements: string[];
}

const RECORD_SUFFIX = ".json";
const ENVIRONMENT_PREFIX = "env-";
const PROBE_TIMEOUT_MS = 15_000;
const OUTPUT_TAIL_BYTES = 64 * 1024;
const ERROR_DETAIL_CHARS = 2000;
const MAX_RESOLUTIONS = 4096;
/** A background build that failed is not tried again before this (a redeploy tries at once). */
const BACKGROUND_RETRY_MS = 60_000;
/** Changes whenever what goes into an environment changes, so older ones are not reused. */
const LAYOUT_VERSION = 1;

/** Which recorded packages an interpreter lacks (not installed, or at another version than pinned); standard library only. */
const SATISFIES_SCRIPT = `
import importlib.metadata as m, json, re, sys
unmet = []
for spec in sys.argv[1:]:
    name, sep, version = spec.strip().partition("==")
    try:
        have = m.version(name.strip()) if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip()) else None
    except m.PackageNotFoundError:
        have = None
    if have is None or (sep and have != version.strip()):
        unmet.append({"spec": spec, "installed": have})
print(json.dumps({"unmet": unmet}))
`;

/**
 * Per-model Python environments: a closure that records packages
 * (PythonClosureRuntime.packages) runs in the interpreter that deployed it
 * when that one has every recorded package at its recorded version, and
 * otherwise in a virtual environment built from exactly those packages plus
 * the runtime's own dependencies (for names the model does not pin: the
 * model's pins are authoritative). Environments are cached under
 * `directory`, keyed by a hash of (Python version, sorted packages, the
 * runtime's requirements), bounded in count and bytes (least recently used
 * first out; never one a registered model with replicas uses), built once
 * however many deploys ask at the same time, and published atomically: a
 * venv holds its own absolute path, so it is built where it stays and made
 * visible by renaming its record into place; a directory without a record is
 * a half-built one and is removed.
 */
export class PythonEnvironments {
  private readonly settings: Required<Omit<PythonEnvironmentsOptions, "models" | "onPrepared" | "parentEnv">> & { parentEnv: NodeJS.ProcessEnv };
  /** Interpreters chosen this run, by runtime (interpreter and environment key); what launches read synchronously. */
  private readonly resolutions = new Map<string, PreparedInterpreter>();
  private readonly building = new Map<string, Promise<EnvironmentRecord>>();
  private readonly background = new Map<string, Promise<void>>();
  private readonly backgroundFailures = new Map<string, number>();
  private readonly leases = new Map<string, number>();
  private readonly versionProbes = new Map<string, Promise<string | undefined>>();
  private runtimeRequirementsCache?: { requirements: string[]; sdkVersion: string };
  private defaultVersion?: string;
  /** Record changes (capacity checks, eviction, publishing) one at a time. */
  private commits: Promise<unknown> = Promise.resolve();
  /** Builds started since this object was made (a cache hit is not one). */
  builds = 0;

  constructor(private readonly options: PythonEnvironmentsOptions) {
    this.settings = {
      directory: options.directory,
      sdkPyproject: options.sdkPyproject,
      defaultPython: options.defaultPython,
      installer: options.installer ?? DEFAULT_PYTHON_ENVIRONMENTS.installer,
      maxEnvironments: options.maxEnvironments ?? DEFAULT_PYTHON_ENVIRONMENTS.maxEnvironments,
      maxBytes: options.maxBytes ?? DEFAULT_PYTHON_ENVIRONMENTS.maxBytes,
      buildTimeoutMs: options.buildTimeoutMs ?? DEFAULT_PYTHON_ENVIRONMENTS.buildTimeoutMs,
      progressIntervalMs: options.progressIntervalMs ?? DEFAULT_PYTHON_ENVIRONMENTS.progressIntervalMs,
      logger: options.logger,
      parentEnv: options.parentEnv ?? process.env,
    };
    fs.mkdirSync(this.settings.directory, { recursive: true });
    this.removeUnpublished();
  }

  /** The uv executable this builder uses, or undefined when it builds with venv and pip. */
  uv(): string | undefined {
    if (this.settings.installer === "pip") return undefined;
    const besidePython = path.isAbsolute(this.settings.defaultPython)
      ? findExecutable(path.join(path.dirname(this.settings.defaultPython), "uv"), "")
      : undefined;
    const found = findExecutable("uv", this.settings.parentEnv.PATH ?? "") ?? besidePython;
    if (found === undefined && this.settings.installer === "uv") {
      throw failedPrecondition("--python-env-installer uv: no uv executable on the container-manager's PATH or beside its --python (pip install uv)");
    }
    return found;
  }

  /**
   * The interpreter for a closure that records packages: the recorded
   * interpreter when it has them all, else the cached environment, built
   * now if needed (the caller waits; `onProgress` hears how it goes). Fails
   * FAILED_PRECONDITION naming a package the installer cannot resolve,
   * DEADLINE_EXCEEDED past the build timeout, RESOURCE_EXHAUSTED when the
   * cache is full of environments in use. The environment is not evicted
   * until the lease is released.
   */
  async prepare(runtime: PythonClosureRuntime, onProgress: (message: string) => void = () => {}): Promise<PreparedLease> {
    const packages = normalizedPackages(runtime.packages);
    const recorded = runtime.interpreter;
    let why = "the model records no interpreter";
    if (recorded !== "") {
      const probe = findExecutable(recorded, "") === undefined ? undefined : await this.probeSatisfies(recorded, packages);
      if (probe !== undefined && probe.unmet.length === 0) {
        const interpreter = {
          path: recorded,
          note: `python: ${recorded}, the interpreter recorded with the model (it has every recorded package: ${packages.join(", ")})`,
          env: {},
        };
        this.remember(runtime, interpreter);
        return { interpreter, release: () => {} };
      }
      why =
        probe === undefined
          ? `the interpreter recorded with the model, ${recorded}, is not an executable file on this machine`
          : `the interpreter recorded with the model, ${recorded}, lacks ${probe.unmet.map((u) => `${u.spec}${u.installed ? ` (it has ${u.installed})` : ""}`).join(", ")}`;
    }
    const plan = this.plan(runtime, await this.pythonVersionOf(runtime));
    this.lease(plan.key);
    try {
      const record = await this.environment(plan, runtime, onProgress);
      const python = environmentPython(this.settings.directory, record);
      const interpreter = {
        path: python,
        note: `python: ${python}, the environment built for the model's packages (${packages.join(", ")}; key ${plan.key.slice(0, 12)}): ${why}`,
        env: { PYTHONNOUSERSITE: "1" },
      };
      this.remember(runtime, interpreter);
      let released = false;
      return {
        interpreter,
        release: () => {
          if (!released) this.unlease(plan.key);
          released = true;
        },
      };
    } catch (err) {
      this.unlease(plan.key);
      throw err;
    }
  }

  /** For launches (synchronous): the interpreter prepare() chose for this runtime; FAILED_PRECONDITION when there is none (yet). */
  interpreterFor(runtime: PythonClosureRuntime): PreparedInterpreter {
    const key = this.resolutionKey(runtime);
    const interpreter = this.resolutions.get(key);
    if (interpreter !== undefined && fs.existsSync(interpreter.path)) return interpreter;
    this.resolutions.delete(key);
    throw failedPrecondition(
      `the Python environment for the model's packages (${normalizedPackages(runtime.packages).join(", ")}) is not ready on this container-manager; deploying the version again prepares it`,
    );
  }

  /** Whether a launch of this runtime finds its interpreter now (always, for a closure that records no packages). */
  ready(runtime: PythonClosureRuntime): boolean {
    if (runtime.packages.length === 0) return true;
    const interpreter = this.resolutions.get(this.resolutionKey(runtime));
    return interpreter !== undefined && fs.existsSync(interpreter.path);
  }

  /**
   * Prepares, without anyone waiting, the interpreters of the models that
   * want replicas and have none ready (after a restart of the
   * container-manager, or an environment removed by hand); onPrepared is
   * called after each. A failure is logged and not retried for a minute.
   */
  prepareInBackground(models: Iterable<Model>): void {
    for (const model of models) {
      const kind = model.runtime?.kind;
      if (model.desiredReplicas === 0 || kind?.case !== "pythonClosure" || this.ready(kind.value)) continue;
      const key = this.resolutionKey(kind.value);
      if (this.background.has(key) || Date.now() - (this.backgroundFailures.get(key) ?? 0) < BACKGROUND_RETRY_MS) continue;
      const done = this.prepare(kind.value).then(
        (lease) => {
          lease.release();
          this.backgroundFailures.delete(key);
          this.options.onPrepared?.();
        },
        (err: unknown) => {
          this.backgroundFailures.set(key, Date.now());
          boundMap(this.backgroundFailures, MAX_RESOLUTIONS);
          this.settings.logger.error({ model: model.name, version: model.version, err: errorText(err) }, "cannot prepare the model's Python environment");
        },
      );
      this.background.set(key, done);
      void done.finally(() => this.background.delete(key));
    }
  }

  /** The published environments, least recently used first. */
  list(): (EnvironmentRecord & { lastUsedMs: number })[] {
    const records: (EnvironmentRecord & { lastUsedMs: number })[] = [];
    for (const name of fs.readdirSync(this.settings.directory)) {
      if (!name.endsWith(RECORD_SUFFIX)) continue;
      const file = path.join(this.settings.directory, name);
      try {
        const record = JSON.parse(fs.readFileSync(file, "utf8")) as EnvironmentRecord;
        records.push({ ...record, lastUsedMs: fs.statSync(file).mtimeMs });
      } catch {
        // A record being replaced or removed right now.
      }
    }
    return records.sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  }

  private plan(runtime: PythonClosureRuntime, pythonVersion: string): EnvironmentPlan {
    const packages = normalizedPackages(runtime.packages);
    const { requirements, sdkVersion } = this.runtimeRequirements();
    const pinned = new Set(packages.map(requirementName));
    const runtimeRequirements = requirements.filter((r) => !pinned.has(requirementName(r)));
    const key = createHash("sha256")
      .update(JSON.stringify({ layout: LAYOUT_VERSION, python: pythonVersion, packages, runtime: runtimeRequirements, sdk: sdkVersion }))
      .digest("hex");
    return { key, pythonVersion, packages, runtimeRequirements };
  }

  /** The runtime's key for resolutions: what it records that decides its interpreter. */
  private resolutionKey(runtime: PythonClosureRuntime): string {
    return [runtime.interpreter, runtime.pythonVersion, ...normalizedPackages(runtime.packages)].join("\0");
  }

  private remember(runtime: PythonClosureRuntime, interpreter: PreparedInterpreter): void {
    const key = this.resolutionKey(runtime);
    this.resolutions.delete(key);
    this.resolutions.set(key, interpreter);
    boundMap(this.resolutions, MAX_RESOLUTIONS);
  }

  private async pythonVersionOf(runtime: PythonClosureRuntime): Promise<string> {
    if (runtime.pythonVersion !== "") return runtime.pythonVersion;
    const version = await this.probeVersion(this.settings.defaultPython);
    if (version === undefined)
      throw failedPrecondition(`the model records no Python version and the container-manager's --python ${this.settings.defaultPython} does not run`);
    this.defaultVersion = version;
    return version;
  }

  private async environment(plan: EnvironmentPlan, runtime: PythonClosureRuntime, onProgress: (message: string) => void): Promise<EnvironmentRecord> {
    const cached = this.published(plan.key);
    if (cached !== undefined) {
      // Its record's time is its last use, for eviction.
      const now = new Date();
      fs.utimesSync(recordPath(this.settings.directory, plan.key), now, now);
      onProgress(`using the cached Python environment ${plan.key.slice(0, 12)} (${plan.packages.join(", ")})`);
      return cached;
    }
    let build = this.building.get(plan.key);
    if (build === undefined) {
      build = this.build(plan, runtime, onProgress);
      this.building.set(plan.key, build);
      void build.then(
        () => this.building.delete(plan.key),
        () => this.building.delete(plan.key),
      );
    } else {
      onProgress(`waiting for the Python environment ${plan.key.slice(0, 12)} another deploy is building (${plan.packages.join(", ")})`);
    }
    return build;
  }

  private published(key: string): EnvironmentRecord | undefined {
    try {
      const record = JSON.parse(fs.readFileSync(recordPath(this.settings.directory, key), "utf8")) as EnvironmentRecord;
      return fs.existsSync(environmentPython(this.settings.directory, record)) ? record : undefined;
    } catch {
      return undefined;
    }
  }

  private async build(plan: EnvironmentPlan, runtime: PythonClosureRuntime, onProgress: (message: string) => void): Promise<EnvironmentRecord> {
    const { logger } = this.settings;
    const uv = this.uv();
    const installer = uv === undefined ? "pip" : "uv";
    const what = plan.packages.join(", ");
    await this.commit(() => this.makeRoom(plan.key, 0, what));
    const base = await this.baseInterpreter(plan.pythonVersion, runtime.interpreter);
    const directory = `${ENVIRONMENT_PREFIX}${plan.key.slice(0, 32)}-${randomBytes(4).toString("hex")}`;
    const target = path.join(this.settings.directory, directory);
    this.builds++;
    const started = Date.now();
    const deadline = started + this.settings.buildTimeoutMs;
    const fields = { key: plan.key.slice(0, 12), packages: plan.packages, python: plan.pythonVersion, base, installer };
    logger.info(fields, "building a python environment");
    onProgress(`building a Python environment for ${what} with ${installer} (Python ${plan.pythonVersion})`);
    const progress = setInterval(() => {
      const seconds = Math.round((Date.now() - started) / 1000);
      logger.info({ ...fields, elapsedSeconds: seconds }, "still building a python environment");
      onProgress(`still building the Python environment for ${what} (${seconds} s)`);
    }, this.settings.progressIntervalMs);
    progress.unref();
    try {
      const python = path.join(target, "bin", "python");
      const specs = [...plan.packages, ...plan.runtimeRequirements];
      if (uv !== undefined) {
        await this.run(uv, ["venv", "--python", base, target], deadline, what);
        await this.run(uv, ["pip", "install", "--no-progress", "--python", python, ...specs], deadline, what, plan.packages);
      } else {
        await this.run(base, ["-m", "venv", target], deadline, what);
        await this.run(
          python,
          ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off", ...specs],
          deadline,
          what,
          plan.packages,
        );
      }
      const record: EnvironmentRecord = {
        key: plan.key,
        directory,
        pythonVersion: plan.pythonVersion,
        packages: plan.packages,
        runtimeRequirements: plan.runtimeRequirements,
        installer,
        builtAtMs: Date.now(),
        buildMs: Date.now() - started,
        sizeBytes: await directoryBytes(target),
      };
      await this.commit(async () => {
        await this.makeRoom(plan.key, record.sizeBytes, what);
        const file = recordPath(this.settings.directory, plan.key);
        const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
        fs.writeFileSync(tmp, JSON.stringify(record));
        fs.renameSync(tmp, file);
      });
      logger.info({ ...fields, buildMs: record.buildMs, sizeBytes: record.sizeBytes }, "python environment built");
      return record;
    } catch (err) {
      logger.warn({ ...fields, err: errorText(err) }, "python environment build failed");
      await fs.promises.rm(target, { recursive: true, force: true });
      throw err;
    } finally {
      clearInterval(progress);
    }
  }

  /**
   * Evicts the least recently used environments no one uses until one more
   * (of `newBytes`) fits both bounds; RESOURCE_EXHAUSTED when the ones in
   * use leave no room.
   */
  private async makeRoom(key: string, newBytes: number, what: string): Promise<void> {
    const protectedKeys = this.protectedKeys();
    protectedKeys.add(key);
    const records = this.list().filter((r) => r.key !== key);
    const others = [...this.building.keys()].filter((k) => k !== key && !records.some((r) => r.key === k)).length;
    let count = records.length + others;
    let bytes = records.reduce((sum, r) => sum + r.sizeBytes, 0);
    const fits = () => count + 1 <= this.settings.maxEnvironments && bytes + newBytes <= this.settings.maxBytes;
    for (const record of records) {
      if (fits()) break;
      if (protectedKeys.has(record.key)) continue;
      fs.rmSync(recordPath(this.settings.directory, record.key), { force: true });
      await fs.promises.rm(path.join(this.settings.directory, record.directory), { recursive: true, force: true });
      count--;
      bytes -= record.sizeBytes;
      this.settings.logger.info({ key: record.key.slice(0, 12), packages: record.packages, sizeBytes: record.sizeBytes }, "python environment evicted");
    }
    if (newBytes > this.settings.maxBytes) {
      throw resourceExhausted(
        `cannot keep the Python environment for ${what}: it alone has ${newBytes} bytes, more than --python-envs-max-bytes ${this.settings.maxBytes}; it was removed`,
      );
    }
    if (!fits()) {
      throw resourceExhausted(
        `cannot build the Python environment for ${what}: the environments in use fill the cache (${count} environments, ${bytes} bytes${newBytes > 0 ? `, this one ${newBytes}` : ""}; ` +
          `--python-envs-max-count ${this.settings.maxEnvironments}, --python-envs-max-bytes ${this.settings.maxBytes}): stop a model that uses one, or raise the bound`,
      );
    }
  }

  private protectedKeys(): Set<string> {
    const keys = new Set([...this.leases.keys(), ...this.building.keys()]);
    for (const model of this.options.models?.() ?? []) {
      const kind = model.runtime?.kind;
      if (model.desiredReplicas === 0 || kind?.case !== "pythonClosure" || kind.value.packages.length === 0) continue;
      keys.add(this.plan(kind.value, kind.value.pythonVersion || (this.defaultVersion ?? "")).key);
    }
    return keys;
  }

  private commit<T>(change: () => Promise<T>): Promise<T> {
    const next = this.commits.then(change, change);
    this.commits = next.catch(() => undefined);
    return next;
  }

  private lease(key: string): void {
    this.leases.set(key, (this.leases.get(key) ?? 0) + 1);
  }

  private unlease(key: string): void {
    const n = (this.leases.get(key) ?? 1) - 1;
    if (n > 0) this.leases.set(key, n);
    else this.leases.delete(key);
  }

  /** An interpreter of that Python version to make the venv from: the recorded one, --python, python<version>, python3. */
  private async baseInterpreter(version: string, recorded: string): Promise<string> {
    const searchPath = this.settings.parentEnv.PATH ?? "";
    const candidates = [recorded, this.settings.defaultPython, `python${version}`, "python3"]
      .filter((c) => c !== "")
      .map((c) => findExecutable(c, searchPath))
      .filter((c): c is string => c !== undefined);
    const tried: string[] = [];
    for (const candidate of new Set(candidates)) {
      const found = await this.probeVersion(candidate);
      if (found === version) return candidate;
      tried.push(`${candidate} (${found === undefined ? "does not run" : `Python ${found}`})`);
    }
    throw failedPrecondition(
      `the model was pickled with Python ${version} and the container-manager finds no Python ${version} to build its environment from (tried ${tried.join(", ") || "nothing"}): install python${version}, or deploy from that Python`,
    );
  }

  private probeVersion(python: string): Promise<string | undefined> {
    let probe = this.versionProbes.get(python);
    if (probe === undefined) {
      probe = runCapture(python, ["-E", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], this.childEnv(), Date.now() + PROBE_TIMEOUT_MS).then(
        (r) => (r.code === 0 ? r.output.trim() : undefined),
        () => undefined,
      );
      this.versionProbes.set(python, probe);
      boundMap(this.versionProbes, 64);
    }
    return probe;
  }

  private async probeSatisfies(python: string, packages: string[]): Promise<{ unmet: { spec: string; installed: string | null }[] } | undefined> {
    try {
      const r = await runCapture(python, ["-E", "-c", SATISFIES_SCRIPT, ...packages], this.childEnv(), Date.now() + PROBE_TIMEOUT_MS);
      if (r.code !== 0) return undefined;
      return JSON.parse(r.output.trim().split("\n").pop() ?? "") as { unmet: { spec: string; installed: string | null }[] };
    } catch {
      return undefined;
    }
  }

  /** Runs one build step; its failure names the packages the installer's error names, with that error. */
  private async run(command: string, args: string[], deadline: number, what: string, named: string[] = []): Promise<void> {
    const step = `${path.basename(command)} ${args.slice(0, 2).join(" ")}`;
    let result: { code: number | null; output: string; timedOut: boolean };
    try {
      result = await runCapture(command, args, this.childEnv(), deadline);
    } catch (err) {
      throw failedPrecondition(`cannot build the Python environment for ${what}: ${step} could not run: ${errorText(err)}`);
    }
    if (result.timedOut) {
      throw deadlineExceeded(
        `building the Python environment for ${what} took longer than --python-env-build-timeout-seconds (${Math.round(this.settings.buildTimeoutMs / 1000)} s); it was stopped and removed`,
      );
    }
    if (result.code === 0) return;
    const detail = errorSection(result.output);
    const culprits = named.filter((spec) => mentions(detail, requirementName(spec)));
    const subject =
      culprits.length > 0 ? `the package${culprits.length > 1 ? "s" : ""} ${culprits.join(", ")} cannot be installed` : `${step} exited ${result.code}`;
    throw failedPrecondition(`cannot build the Python environment for the model's packages (${what}): ${subject}: ${detail}`);
  }

  private childEnv(): Record<string, string> {
    const env: Record<string, string> = { UV_PYTHON_DOWNLOADS: "never", UV_NO_PROGRESS: "1", PIP_NO_INPUT: "1" };
    for (const [name, value] of Object.entries(this.settings.parentEnv)) {
      if (value === undefined) continue;
      // An installer runs packages' build scripts: it gets what finding and fetching packages needs, never the manager's own secrets.
      if (INSTALLER_VARIABLES.has(name) || /^(PIP|UV)_/.test(name) || /^(https?|no|all)_proxy$/i.test(name)) env[name] = value;
    }
    return env;
  }

  private runtimeRequirements(): { requirements: string[]; sdkVersion: string } {
    if (this.runtimeRequirementsCache === undefined) {
      let text: string;
      try {
        text = fs.readFileSync(this.settings.sdkPyproject, "utf8");
      } catch (err) {
        throw failedPrecondition(
          `the Python SDK's ${this.settings.sdkPyproject} cannot be read (${errorText(err)}): the container-manager's --repo-root must be a Clipper checkout`,
        );
      }
      const requirements = [...tomlStringArray(text, "project", "dependencies"), ...tomlStringArray(text, "project.optional-dependencies", "observability")];
      if (requirements.length === 0) throw failedPrecondition(`${this.settings.sdkPyproject} lists no [project] dependencies`);
      this.runtimeRequirementsCache = { requirements, sdkVersion: tomlString(text, "project", "version") ?? "" };
    }
    return this.runtimeRequirementsCache;
  }

  /** Directories a build left without publishing them (the container-manager died during it). */
  private removeUnpublished(): void {
    const published = new Set(this.list().map((r) => r.directory));
    for (const name of fs.readdirSync(this.settings.directory)) {
      if ((name.startsWith(ENVIRONMENT_PREFIX) && !published.has(name)) || name.endsWith(".tmp")) {
        fs.rmSync(path.join(this.settings.directory, name), { recursive: true, force: true });
      }
    }
  }
}

const INSTALLER_VARIABLES = new Set([
  "PATH",
  "HOME",
  "LANG",
  "TMPDIR",
  "XDG_CACHE_HOME",
  "XDG_CONFIG_HOME",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "REQUESTS_CA_BUNDLE",
]);

/** The packages as given, trimmed, without empties and duplicates, sorted: what the key and the install use. */
export function normalizedPackages(packages: readonly string[]): string[] {
  return [...new Set(packages.map((p) => p.trim()).filter((p) => p !== ""))].sort();
}

/** A requirement's distribution name, normalized as PEP 503 does. */
export function requirementName(spec: string): string {
  const name = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(spec)?.[1] ?? spec;
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

const recordPath = (directory: string, key: string) => path.join(directory, `${key}${RECORD_SUFFIX}`);
const environmentPython = (directory: string, record: EnvironmentRecord) => path.join(directory, record.directory, "bin", "python");

/** Whether `text` names the distribution `name` (normalized), as a whole word. */
function mentions(text: string, name: string): boolean {
  const normalized = text.toLowerCase().replace(/[_.]+/g, "-");
  const escaped = name.replace(/[-/\\^$*+?.()|[\]{}]/g, "\\$&");
  return new RegExp(`(^|[^a-z0-9-])${escaped}($|[^a-z0-9-])`).test(normalized);
}

/** The installer's error: from its first error line (uv's `error:`, pip's `ERROR:`) on, else its last lines; bounded. */
function errorSection(output: string): string {
  const lines = output.split("\n").filter((l) => l.trim() !== "");
  const first = lines.findIndex((l) => /^\s*(error|×)/i.test(l));
  const text = (first >= 0 ? lines.slice(first) : lines.slice(-15)).map((l) => l.trim()).join(" ");
  return text.length > ERROR_DETAIL_CHARS ? `${text.slice(0, ERROR_DETAIL_CHARS)}…` : text;
}

/** The strings of `key = [ "...", ... ]` in a pyproject.toml table: enough TOML for the SDK's own file. */
export function tomlStringArray(text: string, table: string, key: string): string[] {
  const body = tomlTable(text, table);
  const match = new RegExp(`^${key}\\s*=\\s*\\[([^\\]]*)\\]`, "m").exec(body);
  return match === null ? [] : [...(match[1] ?? "").matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? "");
}

function tomlString(text: string, table: string, key: string): string | undefined {
  return new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, "m").exec(tomlTable(text, table))?.[1];
}

function tomlTable(text: string, table: string): string {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.trim() === `[${table}]`);
  if (start < 0) return "";
  const end = lines.findIndex((l, i) => i > start && /^\s*\[/.test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

async function directoryBytes(root: string): Promise<number> {
  let total = 0;
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    for (const entry of await fs.promises.readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.isFile()) total += (await fs.promises.stat(full)).size;
    }
  }
  return total;
}

function boundMap<K, V>(map: Map<K, V>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs a program in its own process group with stdout and stderr together
 * (the last OUTPUT_TAIL_BYTES kept), killing the group at the deadline.
 */
function runCapture(
  command: string,
  args: string[],
  env: Record<string, string>,
  deadline: number,
): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    let timedOut = false;
    const append = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (output.length > OUTPUT_TAIL_BYTES) output = output.slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout.on("data", append);
    child.stderr.on("data", append);
    const timer = setTimeout(
      () => {
        timedOut = true;
        if (child.pid !== undefined) {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {
            // Already gone.
          }
        }
      },
      Math.max(0, deadline - Date.now()),
    );
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
  });
}
