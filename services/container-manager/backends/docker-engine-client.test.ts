import { describe, expect, it } from "vitest";
import { containerName } from "./container-engine-backend.js";
import { LineSplitter } from "./docker-engine-client.js";

describe("LineSplitter", () => {
  it("joins pieces into whole lines and keeps the unfinished last one for flush", () => {
    const lines = new LineSplitter(100);
    expect(lines.push("ab")).toEqual([]);
    expect(lines.push("c\r\nde\n\nf")).toEqual(["abc", "de", ""]);
    expect(lines.flush()).toBe("f");
    expect(lines.flush()).toBeUndefined();
  });

  it("cuts a line longer than its bound and drops the rest up to the newline", () => {
    const lines = new LineSplitter(4);
    expect(lines.push("123456")).toEqual([]);
    expect(lines.push("789\nok\n")).toEqual(["1234", "ok"]);
  });
});

describe("containerName", () => {
  it("keeps to the engine's alphabet and tells runs apart", () => {
    expect(containerName("default", { modelName: "my model/v", modelVersion: "1.0" }, "ab12cd34", 3)).toBe("clipper-default-my-model-v-1.0-ab12cd34-3");
  });
});
