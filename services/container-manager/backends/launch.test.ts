import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema } from "../../../gen/clipper/v1/resources_pb.js";
import { findExecutable, launchCommand, runtimeUnavailable, validateRuntime } from "./launch.js";

const paths = { repoRoot: "/repo", dataDir: "/data", python: "/repo/.venv/bin/python", node: "/usr/bin/node" };
const parentEnv = { PATH: "/bin", HOME: "/home/u", LANG: "C.UTF-8", CLIPPER_ADMIN_TOKEN: "secret", AWS_SECRET_ACCESS_KEY: "x" };
const digest = "a".repeat(64);
const spec = (kind: Parameters<typeof create<typeof ModelRuntimeSchema>>[1]) => ({
  modelName: "sum",
  modelVersion: "1",
  inputType: InputType.DOUBLES,
  runtime: create(ModelRuntimeSchema, kind),
});

describe("launchCommand", () => {
  it("runs a python closure that records packages with the interpreter prepared for it, and its environment", () => {
    const asked: string[][] = [];
    const pythonEnvironments = {
      interpreterFor: (runtime: { packages: string[] }) => {
        asked.push(runtime.packages);
        return { path: "/envs/env-1/bin/python", note: "python: /envs/env-1/bin/python, the environment built", env: { PYTHONNOUSERSITE: "1" } };
      },
    };
    const withPackages = spec({
      kind: { case: "pythonClosure", value: { artifactDigest: digest, packages: ["six==1.15.0"], interpreter: "/home/u/env/bin/python" } },
    });
    const cmd = launchCommand(withPackages, 7001, { ...paths, pythonEnvironments }, parentEnv);
    expect(cmd).toMatchObject({
      command: "/envs/env-1/bin/python",
      args: ["-m", "clipper_runtime.closure_runner"],
      note: "python: /envs/env-1/bin/python, the environment built",
    });
    expect(cmd.env).toMatchObject({ PYTHONNOUSERSITE: "1", PYTHONPATH: "/repo/sdk/python/src", CLIPPER_ARTIFACT: `/data/artifacts/sha256/${digest}` });
    expect(asked).toEqual([["six==1.15.0"]]);
    // No packages recorded: as before, and the environments are not asked.
    const without = launchCommand(
      spec({ kind: { case: "pythonClosure", value: { artifactDigest: digest } } }),
      7001,
      { ...paths, pythonEnvironments },
      parentEnv,
    );
    expect(without.command).toBe("/repo/.venv/bin/python");
    expect(without.env.PYTHONNOUSERSITE).toBeUndefined();
    expect(asked).toHaveLength(1);
  });

  it("runs a python closure with the SDK runner, the artifact path and a minimal environment", () => {
    const cmd = launchCommand(spec({ kind: { case: "pythonClosure", value: { artifactDigest: digest } } }), 7001, paths, parentEnv);
    expect(cmd.command).toBe("/repo/.venv/bin/python");
    expect(cmd.args).toEqual(["-m", "clipper_runtime.closure_runner"]);
    expect(cmd.env).toEqual({
      PATH: "/bin",
      HOME: "/home/u",
      LANG: "C.UTF-8",
      PYTHONPATH: "/repo/sdk/python/src",
      PYTHONUNBUFFERED: "1",
      CLIPPER_ARTIFACT: `/data/artifacts/sha256/${digest}`,
      CLIPPER_MODEL_PORT: "7001",
      CLIPPER_MODEL_NAME: "sum",
      CLIPPER_MODEL_VERSION: "1",
      CLIPPER_INPUT_TYPE: "doubles",
    });
  });

  it("runs a python closure with the interpreter that deployed it when that is an executable here, else with --python, and says which", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "launch-test-"));
    try {
      const venvPython = path.join(dir, "bin", "python");
      fs.mkdirSync(path.dirname(venvPython));
      fs.writeFileSync(venvPython, "#!/bin/sh\n", { mode: 0o755 });
      // A venv's bin/python is a symbolic link: it is run by its own path, not the target's.
      const linked = path.join(dir, "bin", "python3");
      fs.symlinkSync(venvPython, linked);
      const notExecutable = path.join(dir, "plain");
      fs.writeFileSync(notExecutable, "", { mode: 0o644 });
      const closure = (interpreter: string) =>
        launchCommand(spec({ kind: { case: "pythonClosure", value: { artifactDigest: digest, interpreter } } }), 7001, paths, parentEnv);

      expect(closure(venvPython)).toMatchObject({ command: venvPython, note: `python: ${venvPython}, the interpreter recorded with the model` });
      expect(closure(linked).command).toBe(linked);
      for (const missing of [path.join(dir, "gone", "python"), notExecutable, dir]) {
        expect(closure(missing)).toMatchObject({
          command: "/repo/.venv/bin/python",
          note: `python: /repo/.venv/bin/python, the container-manager's --python: the interpreter recorded with the model, ${missing}, is not an executable file on this machine`,
        });
      }
      expect(closure("")).toMatchObject({
        command: "/repo/.venv/bin/python",
        note: "python: /repo/.venv/bin/python, the container-manager's --python (the model records no interpreter)",
      });
      expect(closure(venvPython).env.PYTHONPATH).toBe("/repo/sdk/python/src");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs a node module with the TypeScript runner from the repository root", () => {
    const cmd = launchCommand(spec({ kind: { case: "nodeModule", value: { modulePath: "/models/m.ts" } } }), 7002, paths, parentEnv);
    expect([cmd.command, ...cmd.args]).toEqual(["/usr/bin/node", "--import", "tsx", "/repo/sdk/typescript/src/runner.ts"]);
    expect(cmd.cwd).toBe("/repo");
    expect(cmd.env.CLIPPER_MODEL_MODULE).toBe("/models/m.ts");
    expect(cmd.env.CLIPPER_ADMIN_TOKEN).toBeUndefined();
  });

  it("runs a java class with the JVM options, the SDK's jar and the model's jar on the class path, and ModelMain", () => {
    const javaPaths = { ...paths, java: "/usr/bin/java", javaSdkJar: "/repo/sdk/java/target/sdk-all.jar" };
    const runtime = { kind: { case: "javaClass" as const, value: { jarDigest: digest, className: "com.example.Sum", jvmOptions: ["-Xmx256m", "-Dx=1"] } } };
    const cmd = launchCommand(spec(runtime), 7004, javaPaths, parentEnv);
    expect([cmd.command, ...cmd.args]).toEqual([
      "/usr/bin/java",
      "-Xmx256m",
      "-Dx=1",
      "-cp",
      `/repo/sdk/java/target/sdk-all.jar:/data/artifacts/sha256/${digest}`,
      "ai.clipper.ModelMain",
      "com.example.Sum",
    ]);
    expect(cmd.cwd).toBe("/data");
    expect(cmd.env).toEqual({
      PATH: "/bin",
      HOME: "/home/u",
      LANG: "C.UTF-8",
      CLIPPER_MODEL_PORT: "7004",
      CLIPPER_MODEL_NAME: "sum",
      CLIPPER_MODEL_VERSION: "1",
      CLIPPER_INPUT_TYPE: "doubles",
    });
    // A backend without Java (the kubernetes backend's image paths) refuses it by name.
    expect(() => launchCommand(spec(runtime), 7004, paths, parentEnv)).toThrow("runs no java_class models");
  });

  it("runs a command with its own env, which cannot override the CLIPPER_MODEL_* variables", () => {
    const cmd = launchCommand(
      spec({ kind: { case: "command", value: { argv: ["./serve", "--x"], env: { FOO: "1", CLIPPER_MODEL_PORT: "1" }, workingDir: "/w" } } }),
      7003,
      paths,
      parentEnv,
    );
    expect([cmd.command, ...cmd.args]).toEqual(["./serve", "--x"]);
    expect(cmd.env.FOO).toBe("1");
    expect(cmd.env.CLIPPER_MODEL_PORT).toBe("7003");
    expect(cmd.cwd).toBe("/w");
    expect(Object.keys(cmd.env)).not.toContain("AWS_SECRET_ACCESS_KEY");
  });
});

describe("validateRuntime", () => {
  it("names the field that is wrong", () => {
    expect(() => validateRuntime(undefined)).toThrow("model.runtime is not set");
    expect(() => validateRuntime(create(ModelRuntimeSchema, { kind: { case: "pythonClosure", value: { artifactDigest: "../etc" } } }))).toThrow(
      "model.runtime.python_closure.artifact_digest must be a sha256 hex digest",
    );
    expect(() =>
      validateRuntime(create(ModelRuntimeSchema, { kind: { case: "pythonClosure", value: { artifactDigest: digest, interpreter: "python3" } } })),
    ).toThrow('model.runtime.python_closure.interpreter must be an absolute path (or empty), got "python3"');
    const packages = (list: string[]) => () =>
      validateRuntime(create(ModelRuntimeSchema, { kind: { case: "pythonClosure", value: { artifactDigest: digest, packages: list } } }));
    expect(packages(["six==1.15.0", " --index-url=http://127.0.0.1/simple"])).toThrow(
      'model.runtime.python_closure.packages[1] must be a requirement such as "name==version" (no option, no control character), got " --index-url=http://127.0.0.1/simple"',
    );
    expect(packages(["six\n-r /etc/passwd"])).toThrow("model.runtime.python_closure.packages[0] must be a requirement");
    expect(packages(["six==1.15.0", "numpy>=1.24; python_version >= '3.10'", "pkg @ https://example.invalid/pkg.whl"])).not.toThrow();
    expect(() => validateRuntime(create(ModelRuntimeSchema, { kind: { case: "nodeModule", value: { modulePath: "m.ts" } } }))).toThrow(
      "must be an absolute path",
    );
    expect(() => validateRuntime(create(ModelRuntimeSchema, { kind: { case: "command", value: { argv: [] } } }))).toThrow(
      "model.runtime.command.argv is empty",
    );
    const java = (value: { jarDigest?: string; className?: string; jvmOptions?: string[] }) =>
      validateRuntime(create(ModelRuntimeSchema, { kind: { case: "javaClass", value: { jarDigest: digest, className: "com.example.Sum", ...value } } }));
    expect(() => java({})).not.toThrow();
    expect(() => java({ className: "com.example.Outer$Inner" })).not.toThrow();
    expect(() => java({ jarDigest: "app.jar" })).toThrow(
      'model.runtime.java_class.jar_digest must be a sha256 hex digest (64 lower-case hex characters), got "app.jar"',
    );
    expect(() => java({ className: "com/example/Sum.class" })).toThrow(
      'model.runtime.java_class.class_name must be a fully qualified Java class name (com.example.MyModel), got "com/example/Sum.class"',
    );
    expect(() => java({ className: "" })).toThrow("model.runtime.java_class.class_name must be a fully qualified Java class name");
    expect(() => java({ jvmOptions: ["-Xmx1g", "Xss1m"] })).toThrow('model.runtime.java_class.jvm_options[1] must start with "-", got "Xss1m"');
    expect(() => java({ jvmOptions: ["-cp"] })).toThrow("model.runtime.java_class.jvm_options[0] is -cp: the class path is the SDK's jar and the model's");
    expect(() => java({ jvmOptions: ["--class-path=/tmp"] })).toThrow("model.runtime.java_class.jvm_options[0] is --class-path=/tmp");
  });
});

describe("runtimeUnavailable", () => {
  const runtime = create(ModelRuntimeSchema, { kind: { case: "javaClass", value: { jarDigest: digest, className: "com.example.Sum" } } });

  it("names a missing java executable or SDK jar, and the flag that fixes it", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "launch-java-"));
    try {
      const java = path.join(dir, "java");
      fs.writeFileSync(java, "#!/bin/sh\n", { mode: 0o755 });
      const jar = path.join(dir, "sdk-all.jar");
      fs.writeFileSync(jar, "");
      const env = { PATH: `/nonexistent:${dir}` };
      expect(runtimeUnavailable(runtime, { ...paths, java: "java", javaSdkJar: jar }, env)).toBeUndefined();
      expect(runtimeUnavailable(runtime, { ...paths, java, javaSdkJar: jar }, env)).toBeUndefined();
      expect(runtimeUnavailable(runtime, { ...paths, java: "java", javaSdkJar: jar }, { PATH: "/nonexistent" })).toBe(
        'java_class models need Java 17 or later: "java" is not an executable on the container-manager\'s PATH; install a JDK or give the container-manager --java /path/to/java',
      );
      expect(runtimeUnavailable(runtime, { ...paths, java: `${dir}/nojava`, javaSdkJar: jar }, env)).toMatch(
        /"\/.*\/nojava" is not an executable; install a JDK/,
      );
      expect(runtimeUnavailable(runtime, { ...paths, java, javaSdkJar: `${dir}/missing.jar` }, env)).toBe(
        `java_class models need the Java SDK's runnable jar, and ${dir}/missing.jar does not exist: build it (cd sdk/java && mvn install) or give the container-manager --java-sdk-jar`,
      );
      expect(runtimeUnavailable(runtime, paths, env)).toBe("this container-manager's backend runs no java_class models");
      // Other runtimes need nothing of Java.
      expect(runtimeUnavailable(create(ModelRuntimeSchema, { kind: { case: "nodeModule", value: { modulePath: "/m.ts" } } }), paths, env)).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("findExecutable looks a bare name up on PATH and takes a path as it is", () => {
    expect(findExecutable("sh", "/nonexistent:/bin")).toBe("/bin/sh");
    expect(findExecutable("/bin/sh", "")).toBe("/bin/sh");
    expect(findExecutable("no-such-program-here", "/bin:/usr/bin")).toBeUndefined();
  });
});
