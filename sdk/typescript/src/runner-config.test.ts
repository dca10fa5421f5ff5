import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InputType } from "./gen/clipper/common/v1/data_pb.js";
import { loadModel, runnerConfigFromEnv } from "./runner-config.js";

const env = {
  CLIPPER_MODEL_PORT: "7001",
  CLIPPER_MODEL_NAME: "sum",
  CLIPPER_MODEL_VERSION: "1",
  CLIPPER_INPUT_TYPE: "doubles",
  CLIPPER_MODEL_MODULE: "/tmp/model.ts",
};

describe("runnerConfigFromEnv", () => {
  it("reads the CLIPPER_MODEL_* variables", () => {
    expect(runnerConfigFromEnv(env)).toEqual({ port: 7001, name: "sum", version: "1", inputType: InputType.DOUBLES, modulePath: "/tmp/model.ts" });
  });

  it("names the variable that is missing or wrong", () => {
    expect(() => runnerConfigFromEnv({ ...env, CLIPPER_MODEL_PORT: "" })).toThrow("CLIPPER_MODEL_PORT is not set");
    expect(() => runnerConfigFromEnv({ ...env, CLIPPER_MODEL_PORT: "99999" })).toThrow("CLIPPER_MODEL_PORT");
    expect(() => runnerConfigFromEnv({ ...env, CLIPPER_INPUT_TYPE: "tensors" })).toThrow(/CLIPPER_INPUT_TYPE: unknown input type/);
  });
});

describe("loadModel", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "clipper-runner-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("accepts a default-exported function or object with predict", async () => {
    writeFileSync(path.join(dir, "fn.mjs"), "export default (xs) => xs.map(String);\n");
    writeFileSync(path.join(dir, "obj.mjs"), "export default { predict: (xs) => xs.map(String) };\n");
    expect(typeof (await loadModel(path.join(dir, "fn.mjs")))).toBe("function");
    expect(typeof (await loadModel(path.join(dir, "obj.mjs")))).toBe("object");
  });

  it("rejects a module without a usable default export", async () => {
    writeFileSync(path.join(dir, "bad.mjs"), "export const x = 1;\n");
    await expect(loadModel(path.join(dir, "bad.mjs"))).rejects.toThrow(/default export must be a function or an object with a predict method, not undefined/);
  });
});
