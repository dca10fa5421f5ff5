import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ConfigSnapshotSchema } from "../../gen/clipper/v1/resources_pb.js";
import { Code, viewFromSnapshot } from "../shared/index.js";
import { FeedbackRecorder } from "./feedback.js";
import { PredictionCache } from "./prediction-cache.js";

const utf8 = new TextEncoder();

describe("FeedbackRecorder", () => {
  const view = viewFromSnapshot(create(ConfigSnapshotSchema, { applications: [{ name: "app", inputType: InputType.STRINGS }] }));
  const limits = { maxBatch: 10, maxInputSize: 10 };
  const strings = (...s: string[]) => create(InputsSchema, { type: InputType.STRINGS, strings: s });

  it("accepts one label per input and counts them", async () => {
    const recorder = new FeedbackRecorder(() => view, limits);
    expect(await recorder.submit("app", strings("a", "b"), ["1", "0"])).toEqual({ accepted: 2, joined: 0, losses: new Map() });
    expect(recorder.accepted()).toBe(2);
  });

  it("gives each joined output's loss by the model version that answered it", async () => {
    const learning = viewFromSnapshot(
      create(ConfigSnapshotSchema, {
        applications: [{ name: "app", inputType: InputType.STRINGS, linkedModels: ["m", "n"], policy: { kind: { case: "exp3", value: { gamma: 0.1 } } } }],
        currentVersions: [
          { modelName: "m", version: "1" },
          { modelName: "n", version: "2" },
        ],
      }),
    );
    const cache = new PredictionCache();
    cache.record("m:1", utf8.encode("a"), "1");
    cache.record("n:2", utf8.encode("a"), "0");
    cache.record("m:1", utf8.encode("b"), "1");
    const recorder = new FeedbackRecorder(() => learning, limits, cache);
    // "a": m right, n wrong; "b": only m answered it, wrongly; "c": nobody did.
    const result = await recorder.submit("app", strings("a", "b", "c"), ["1", "0", "1"]);
    expect(result).toEqual({
      accepted: 3,
      joined: 2,
      losses: new Map([
        ["m:1", [0, 1]],
        ["n:2", [1]],
      ]),
    });
  });

  it("rejects unknown applications, mismatched labels and bad inputs", async () => {
    const recorder = new FeedbackRecorder(() => view, limits);
    await expect(recorder.submit("nope", strings("a"), ["1"])).rejects.toThrow(expect.objectContaining({ code: Code.NotFound }));
    await expect(recorder.submit("app", strings("a", "b"), ["1"])).rejects.toThrow("labels has 1 entries for 2 inputs: send one label per input");
    await expect(recorder.submit("app", strings("a".repeat(11)), ["1"])).rejects.toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(recorder.accepted()).toBe(0);
  });
});
