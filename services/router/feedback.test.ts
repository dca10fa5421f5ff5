import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ConfigSnapshotSchema } from "../../gen/clipper/v1/resources_pb.js";
import { Code, viewFromSnapshot } from "../shared/index.js";
import { FeedbackRecorder } from "./feedback.js";

describe("FeedbackRecorder", () => {
  const view = viewFromSnapshot(create(ConfigSnapshotSchema, { applications: [{ name: "app", inputType: InputType.STRINGS }] }));
  const limits = { maxBatch: 10, maxInputSize: 10 };
  const strings = (...s: string[]) => create(InputsSchema, { type: InputType.STRINGS, strings: s });

  it("accepts one label per input and counts them", async () => {
    const recorder = new FeedbackRecorder(() => view, limits);
    expect(await recorder.submit("app", strings("a", "b"), ["1", "0"])).toEqual({ accepted: 2, joined: 0 });
    expect(recorder.accepted()).toBe(2);
  });

  it("rejects unknown applications, mismatched labels and bad inputs", async () => {
    const recorder = new FeedbackRecorder(() => view, limits);
    await expect(recorder.submit("nope", strings("a"), ["1"])).rejects.toThrow(expect.objectContaining({ code: Code.NotFound }));
    await expect(recorder.submit("app", strings("a", "b"), ["1"])).rejects.toThrow("labels has 1 entries for 2 inputs: send one label per input");
    await expect(recorder.submit("app", strings("a".repeat(11)), ["1"])).rejects.toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(recorder.accepted()).toBe(0);
  });
});
