import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ConfigSnapshotSchema, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, viewFromSnapshot } from "../../shared/index.js";
import { checkVersion, modelConfig, modelMetadata, modelReadiness, repositoryIndex, SERVER_VERSION } from "./models.js";

const view = viewFromSnapshot(
  create(ConfigSnapshotSchema, {
    revision: 1n,
    applications: [
      { name: "digits", inputType: InputType.DOUBLES, defaultOutput: "-1", linkedModels: ["svm"] },
      { name: "names", inputType: InputType.STRINGS, defaultOutput: "unknown" },
    ],
    models: [
      { name: "svm", version: "1", inputType: InputType.DOUBLES },
      { name: "svm", version: "10", inputType: InputType.DOUBLES },
      { name: "svm", version: "2", inputType: InputType.DOUBLES },
    ],
    currentVersions: [{ modelName: "svm", version: "2" }],
    replicaSets: [{ modelName: "svm", modelVersion: "2", replicas: [{ id: "r", modelName: "svm", modelVersion: "2", state: ReplicaState.READY }] }],
  }),
);
const app = (name: string) => view.applications.get(name) ?? (undefined as never);

describe("model metadata", () => {
  it("declares the application's input and outputs, and its linked models' versions", () => {
    expect(modelMetadata(view, app("digits"), "")).toEqual({
      name: "digits",
      versions: ["1", "2", "10"],
      platform: "clipper",
      inputs: [{ name: "input", datatype: "FP64", shape: [-1, -1] }],
      outputs: [
        { name: "output", datatype: "FP64", shape: [-1] },
        { name: "default", datatype: "BOOL", shape: [-1] },
      ],
    });
    expect(modelMetadata(view, app("names"), "")).toMatchObject({
      versions: [],
      inputs: [{ datatype: "BYTES", shape: [-1] }],
      outputs: [{ datatype: "BYTES" }, {}],
    });
    expect(modelMetadata(view, app("digits"), "1").versions).toEqual(["1"]);
  });

  it("answers NOT_FOUND for a version no linked model has, listing those that exist", () => {
    const err = (() => {
      try {
        checkVersion(view, app("digits"), "7");
      } catch (e) {
        return e as ConnectError;
      }
    })();
    expect(err).toBeInstanceOf(ConnectError);
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toBe('model "digits" has no version "7": its linked models\' versions are svm:1, svm:2, svm:10');
  });

  it("names the package's version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(SERVER_VERSION).toBe(pkg.version);
  });
});

describe("model readiness", () => {
  it("is ready when a linked model's version has a ready replica, and says why not otherwise", () => {
    expect(modelReadiness(view, app("digits"), "")).toEqual({ ready: true, cause: "" });
    expect(modelReadiness(view, app("digits"), "1")).toEqual({ ready: false, cause: 'model "digits" is not ready: svm:1 has no ready replica' });
    expect(modelReadiness(view, app("names"), "").cause).toMatch(/has no linked model: it answers only its default output/);
  });
});

describe("model config", () => {
  it("describes the tensors as Triton's ModelConfig does, whole shapes (max_batch_size 0)", () => {
    expect(modelConfig(view, app("digits"), "")).toEqual({
      name: "digits",
      platform: "clipper",
      backend: "clipper",
      max_batch_size: 0,
      input: [{ name: "input", data_type: "TYPE_FP64", dims: [-1, -1] }],
      output: [
        { name: "output", data_type: "TYPE_FP64", dims: [-1] },
        { name: "default", data_type: "TYPE_BOOL", dims: [-1] },
      ],
    });
    expect(modelConfig(view, app("names"), "").input[0]?.data_type).toBe("TYPE_STRING");
  });
});

describe("repository index", () => {
  it("lists every application, READY or UNAVAILABLE with the reason, or only the ready ones", () => {
    expect(repositoryIndex(view, false)).toEqual([
      { name: "digits", version: "", state: "READY", reason: "" },
      { name: "names", version: "", state: "UNAVAILABLE", reason: 'application "names" has no linked model: it answers only its default output' },
    ]);
    expect(repositoryIndex(view, true).map((m) => m.name)).toEqual(["digits"]);
  });
});
