import fs from "node:fs";
import path from "node:path";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import type { ModelRuntime, PythonClosureRuntime } from "../../../gen/clipper/v1/resources_pb.js";
import { failedPrecondition, inputTypeName, invalidArgument } from "../../shared/index.js";
import type { ReplicaSpec } from "./replica-backend.js";

/** Where the runtimes live on this machine. */
export interface LaunchPaths {
  repoRoot: string;
  dataDir: string;
  /** The Python interpreter for python_closure models. */
  python: string;
  /** The Node executable for node_module models. */
  node: string;
  /** The java executable for java_class models: a path, or a name looked up on PATH. Unset: this machine runs no Java models. */
  java?: string;
  /** The Java SDK's runnable jar (sdk/java's target/clipper-model-sdk-VERSION-all.jar) for java_class models. */
  javaSdkJar?: string;
  /** The R SDK's container runner (sdk/r/clippermodel/inst/bin/clipper-r-model) for r_function models. Unset: this machine runs no R models. */
  rRunner?: string;
  /** The R library holding the clippermodel package (given to replicas as R_LIBS); unset: R's own library paths. */
  rLibrary?: string;
  /** The interpreters prepared for closures that record packages (python-environments.ts); unset: they run as those that record none. */
  pythonEnvironments?: { interpreterFor(runtime: PythonClosureRuntime): { path: string; note: string; env: Record<string, string> } };
}

export interface LaunchCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** A line for the replica's log: what was chosen to run it and why (e.g. which Python). */
  note?: string;
  /** What the replica speaks: gRPC (default), or the Connect protocol on HTTP/1.1 (R, which has no gRPC). */
  protocol?: ReplicaProtocol;
}

export type ReplicaProtocol = "grpc" | "connect";

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A Java binary class name: dot-separated identifiers (`$` for nested classes). */
const JAVA_CLASS_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$/;
/** JVM options that would replace the class path the container-manager builds (the SDK's jar and the model's). */
const CLASS_PATH_OPTIONS = new Set(["-cp", "-classpath", "--class-path", "-jar"]);
/** The class every Java replica runs: the SDK's entry point, which loads the model class named after it. */
export const JAVA_MODEL_MAIN = "ai.clipper.ModelMain";

/** The Java SDK's runnable jar in a checkout after `mvn install` in sdk/java (the version is sdk/java/pom.xml's). */
export const defaultJavaSdkJar = (repoRoot: string) => path.join(repoRoot, "sdk", "java", "target", "clipper-model-sdk-0.1.0-all.jar");

export const artifactPath = (dataDir: string, digest: string) => path.join(dataDir, "artifacts", "sha256", digest);

/** The R SDK's container runner in a checkout. */
export const defaultRRunner = (repoRoot: string) => path.join(repoRoot, "sdk", "r", "clippermodel", "inst", "bin", "clipper-r-model");

/** Checks that a runtime can be launched; the error names the field. */
export function validateRuntime(runtime: ModelRuntime | undefined, field = "model.runtime"): void {
  const kind = runtime?.kind;
  switch (kind?.case) {
    case "pythonClosure":
      if (!SHA256_HEX.test(kind.value.artifactDigest)) {
        throw invalidArgument(
          `${field}.python_closure.artifact_digest must be a sha256 hex digest (64 lower-case hex characters), got "${kind.value.artifactDigest.slice(0, 80)}"`,
        );
      }
      if (kind.value.interpreter !== "" && !path.isAbsolute(kind.value.interpreter)) {
        throw invalidArgument(`${field}.python_closure.interpreter must be an absolute path (or empty), got "${kind.value.interpreter.slice(0, 200)}"`);
      }
      kind.value.packages.forEach((spec, i) => {
        // Each is one argument of `pip install`: an option there would change what gets installed from where.
        if (spec.trim().startsWith("-") || [...spec].some((c) => c.charCodeAt(0) < 0x20)) {
          throw invalidArgument(
            `${field}.python_closure.packages[${i}] must be a requirement such as "name==version" (no option, no control character), got "${spec.slice(0, 200)}"`,
          );
        }
      });
      return;
    case "nodeModule":
      if (!path.isAbsolute(kind.value.modulePath)) {
        throw invalidArgument(`${field}.node_module.module_path must be an absolute path, got "${kind.value.modulePath}"`);
      }
      return;
    case "javaClass":
      if (!SHA256_HEX.test(kind.value.jarDigest)) {
        throw invalidArgument(
          `${field}.java_class.jar_digest must be a sha256 hex digest (64 lower-case hex characters), got "${kind.value.jarDigest.slice(0, 80)}"`,
        );
      }
      if (!JAVA_CLASS_NAME.test(kind.value.className)) {
        throw invalidArgument(
          `${field}.java_class.class_name must be a fully qualified Java class name (com.example.MyModel), got "${kind.value.className.slice(0, 200)}"`,
        );
      }
      kind.value.jvmOptions.forEach((option, i) => {
        if (!option.startsWith("-")) throw invalidArgument(`${field}.java_class.jvm_options[${i}] must start with "-", got "${option.slice(0, 200)}"`);
        if (CLASS_PATH_OPTIONS.has(option.split("=")[0] ?? option)) {
          throw invalidArgument(
            `${field}.java_class.jvm_options[${i}] is ${option}: the class path is the SDK's jar and the model's, set by the container-manager`,
          );
        }
      });
      return;
    case "command":
      if (kind.value.argv.length === 0 || kind.value.argv[0] === "") throw invalidArgument(`${field}.command.argv is empty`);
      if (kind.value.workingDir !== "" && !path.isAbsolute(kind.value.workingDir)) {
        throw invalidArgument(`${field}.command.working_dir must be an absolute path, got "${kind.value.workingDir}"`);
      }
      return;
    case "rFunction":
      if (!SHA256_HEX.test(kind.value.artifactDigest)) {
        throw invalidArgument(
          `${field}.r_function.artifact_digest must be a sha256 hex digest (64 lower-case hex characters), got "${kind.value.artifactDigest.slice(0, 80)}"`,
        );
      }
      if (kind.value.format !== "rds" && kind.value.format !== "script") {
        throw invalidArgument(`${field}.r_function.format must be "rds" or "script", got "${kind.value.format.slice(0, 80)}"`);
      }
      return;
    default:
      throw invalidArgument(`${field} is not set: give python_closure, node_module, java_class, r_function or command`);
  }
}

/**
 * Why this machine cannot launch the runtime (no java executable, no SDK
 * jar), naming the flag that fixes it; undefined when it can. Checked at
 * deploy, so the caller hears it at once rather than from three failed starts.
 */
export function runtimeUnavailable(runtime: ModelRuntime | undefined, paths: LaunchPaths, parentEnv: NodeJS.ProcessEnv = process.env): string | undefined {
  if (runtime?.kind.case === "rFunction") return rUnavailable(paths, parentEnv);
  if (runtime?.kind.case !== "javaClass") return undefined;
  if (paths.java === undefined || paths.javaSdkJar === undefined) return "this container-manager's backend runs no java_class models";
  if (findExecutable(paths.java, parentEnv.PATH ?? "") === undefined) {
    return `java_class models need Java 17 or later: "${paths.java}" is not an executable${path.isAbsolute(paths.java) ? "" : " on the container-manager's PATH"}; install a JDK or give the container-manager --java /path/to/java`;
  }
  if (!fs.existsSync(paths.javaSdkJar)) {
    return `java_class models need the Java SDK's runnable jar, and ${paths.javaSdkJar} does not exist: build it (cd sdk/java && mvn install) or give the container-manager --java-sdk-jar`;
  }
  return undefined;
}

function rUnavailable(paths: LaunchPaths, parentEnv: NodeJS.ProcessEnv): string | undefined {
  if (paths.rRunner === undefined) return "this container-manager's backend runs no r_function models";
  if (findExecutable("Rscript", parentEnv.PATH ?? "") === undefined) {
    return "r_function models need R: Rscript is not on the container-manager's PATH (apt-get install r-base-core r-cran-httpuv r-cran-rprotobuf r-cran-jsonlite)";
  }
  if (!isExecutableFile(paths.rRunner))
    return `r_function models need the R SDK's runner, and ${paths.rRunner} is not an executable file: give the container-manager --r-runner`;
  if (paths.rLibrary !== undefined && !fs.existsSync(path.join(paths.rLibrary, "clippermodel", "DESCRIPTION"))) {
    return `r_function models need the R package clippermodel in ${paths.rLibrary}: install it (R CMD INSTALL -l ${paths.rLibrary} sdk/r/clippermodel) or give the container-manager another --r-library`;
  }
  return undefined;
}

/** The file `command` runs: itself when it names a path, else the first executable of that name on `searchPath`. */
export function findExecutable(command: string, searchPath: string): string | undefined {
  if (command.includes("/")) return isExecutableFile(command) ? command : undefined;
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, command);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The process that serves one replica. The child gets only the environment it
 * needs: never the manager's own variables (tokens, credentials).
 */
export function launchCommand(
  spec: ReplicaSpec,
  port: number,
  paths: LaunchPaths,
  parentEnv: NodeJS.ProcessEnv = process.env,
  /** Where the runtime serves its own Prometheus metrics (CLIPPER_METRICS_PORT); none: it serves none. */
  metricsPort?: number,
): LaunchCommand {
  validateRuntime(spec.runtime);
  const env: Record<string, string> = {};
  for (const key of ["PATH", "HOME", "LANG"]) {
    const value = parentEnv[key];
    if (value !== undefined) env[key] = value;
  }
  Object.assign(env, tracingEnv(parentEnv, spec));
  const clipperEnv = {
    ...(metricsPort !== undefined ? { CLIPPER_METRICS_PORT: String(metricsPort) } : {}),
    CLIPPER_MODEL_PORT: String(port),
    CLIPPER_MODEL_NAME: spec.modelName,
    CLIPPER_MODEL_VERSION: spec.modelVersion,
    CLIPPER_INPUT_TYPE: spec.inputType === InputType.UNSPECIFIED ? "" : inputTypeName(spec.inputType),
  };
  const kind = spec.runtime.kind;
  switch (kind.case) {
    case "pythonClosure": {
      const python =
        kind.value.packages.length > 0 && paths.pythonEnvironments !== undefined
          ? paths.pythonEnvironments.interpreterFor(kind.value)
          : { ...closureInterpreter(kind.value.interpreter, paths.python), env: {} };
      return {
        command: python.path,
        args: ["-m", "clipper_runtime.closure_runner"],
        env: {
          ...env,
          ...python.env,
          PYTHONPATH: path.join(paths.repoRoot, "sdk", "python", "src"),
          // Unbuffered, so the model's output reaches the log as it happens.
          PYTHONUNBUFFERED: "1",
          CLIPPER_ARTIFACT: artifactPath(paths.dataDir, kind.value.artifactDigest),
          ...clipperEnv,
        },
        cwd: paths.dataDir,
        note: python.note,
      };
    }
    case "nodeModule":
      return {
        command: paths.node,
        args: ["--import", "tsx", path.join(paths.repoRoot, "sdk", "typescript", "src", "runner.ts")],
        env: { ...env, CLIPPER_MODEL_MODULE: kind.value.modulePath, ...clipperEnv },
        // `--import tsx` resolves from the working directory, where node_modules is.
        cwd: paths.repoRoot,
      };
    case "javaClass": {
      if (paths.java === undefined || paths.javaSdkJar === undefined) {
        throw failedPrecondition("model.runtime.java_class: this container-manager's backend runs no java_class models");
      }
      const classPath = [paths.javaSdkJar, artifactPath(paths.dataDir, kind.value.jarDigest)].join(path.delimiter);
      return {
        command: paths.java,
        args: [...kind.value.jvmOptions, "-cp", classPath, JAVA_MODEL_MAIN, kind.value.className],
        env: { ...env, ...clipperEnv },
        cwd: paths.dataDir,
        note: `java: ${paths.java}, SDK ${paths.javaSdkJar}`,
      };
    }
    case "rFunction": {
      if (paths.rRunner === undefined) throw failedPrecondition("model.runtime.r_function: this container-manager's backend runs no r_function models");
      return {
        command: paths.rRunner,
        args: [artifactPath(paths.dataDir, kind.value.artifactDigest)],
        env: {
          ...env,
          ...(paths.rLibrary !== undefined ? { R_LIBS: paths.rLibrary } : {}),
          CLIPPER_R_MODEL_FORMAT: kind.value.format,
          ...clipperEnv,
        },
        cwd: paths.dataDir,
        note: `R: ${paths.rRunner}${paths.rLibrary !== undefined ? `, R_LIBS=${paths.rLibrary}` : ""}; served over the Connect protocol`,
        protocol: "connect",
      };
    }
    case "command": {
      const [command, ...args] = kind.value.argv;
      return {
        command: command ?? "",
        args,
        env: { ...env, ...kind.value.env, ...clipperEnv },
        cwd: kind.value.workingDir !== "" ? kind.value.workingDir : paths.dataDir,
      };
    }
    default:
      throw invalidArgument("model.runtime is not set");
  }
}

/**
 * The Python that runs a closure: the interpreter that pickled it (recorded
 * by the deployer: the data scientist's venv, conda env or notebook kernel,
 * where the closure's packages are) when it is an executable file on this
 * machine, else `fallback`, the container-manager's --python. The note says
 * which, and why.
 */
export function closureInterpreter(recorded: string, fallback: string): { path: string; note: string } {
  if (recorded === "") return { path: fallback, note: `python: ${fallback}, the container-manager's --python (the model records no interpreter)` };
  if (isExecutableFile(recorded)) return { path: recorded, note: `python: ${recorded}, the interpreter recorded with the model` };
  return {
    path: fallback,
    note: `python: ${fallback}, the container-manager's --python: the interpreter recorded with the model, ${recorded}, is not an executable file on this machine`,
  };
}

function isExecutableFile(file: string): boolean {
  try {
    // Follows symbolic links: a venv's bin/python is one, and must be run by its own path (not the target's) to be that venv.
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The OpenTelemetry settings the replica's runtime needs to continue traces:
 * the manager's OTEL_* variables except the exporter headers (they may carry
 * the collector's credentials, and a model is user code), and a service name
 * of its own.
 */
function tracingEnv(parentEnv: NodeJS.ProcessEnv, spec: ReplicaSpec): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(parentEnv)) {
    if (value === undefined || !key.startsWith("OTEL_") || key.includes("HEADERS") || key === "OTEL_SERVICE_NAME") continue;
    env[key] = value;
  }
  if (Object.keys(env).length > 0) env.OTEL_SERVICE_NAME = `clipper-model-${spec.modelName}`;
  return env;
}
