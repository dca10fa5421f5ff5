import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema } from "../../../gen/clipper/v1/resources_pb.js";
import { launchCommand, validateRuntime } from "./launch.js";

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
    expect(() => validateRuntime(create(ModelRuntimeSchema, { kind: { case: "nodeModule", value: { modulePath: "m.ts" } } }))).toThrow(
      "must be an absolute path",
    );
    expect(() => validateRuntime(create(ModelRuntimeSchema, { kind: { case: "command", value: { argv: [] } } }))).toThrow(
      "model.runtime.command.argv is empty",
    );
  });
});
