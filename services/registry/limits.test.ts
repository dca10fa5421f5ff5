import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { CreateApplicationRequestSchema, CreateModelRequestSchema, UpdateModelRequestSchema } from "../../gen/clipper/v1/management_service_pb.js";
import { Code } from "../shared/index.js";
import { rejection } from "../shared/testing/rejection.js";
import { MemoryStore } from "./memory-store.js";
import { Registry } from "./registry.js";

const app = (name: string) => create(CreateApplicationRequestSchema, { name, inputType: InputType.DOUBLES, sloMicros: 20_000n, defaultOutput: "-1" });
const model = (name: string, version: string, desiredReplicas = 1) =>
  create(CreateModelRequestSchema, {
    model: { name, version, inputType: InputType.DOUBLES, runtime: { kind: { case: "command", value: { argv: ["python3", "m.py"] } } }, desiredReplicas },
  });

describe("registry limits, at and just past each bound", () => {
  const open = () => Registry.open({ store: new MemoryStore(), limits: { maxApplications: 2, maxModelVersions: 3, maxDesiredReplicas: 5 } });

  it("holds at most --max-applications applications, and room frees when one is deleted", async () => {
    const registry = await open();
    await registry.createApplication(app("a1"));
    await registry.createApplication(app("a2"));
    const err = await rejection(registry.createApplication(app("a3")));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/at most 2 applications \(--max-applications\)/);
    await registry.deleteApplication("a1");
    await registry.createApplication(app("a3"));
  });

  it("holds at most --max-model-versions versions of all models together", async () => {
    const registry = await open();
    await registry.createModel(model("m1", "1"));
    await registry.createModel(model("m1", "2"));
    await registry.createModel(model("m2", "1"));
    const err = await rejection(registry.createModel(model("m2", "2")));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/at most 3 model versions \(--max-model-versions\)/);
  });

  it("refuses more than --max-desired-replicas on create and update, naming the field", async () => {
    const registry = await open();
    await registry.createModel(model("m1", "1", 5));
    const created = await rejection(registry.createModel(model("m1", "2", 6)));
    expect(created.code).toBe(Code.InvalidArgument);
    expect(created.rawMessage).toBe("model.desired_replicas is 6; the limit is 5");
    const updated = await rejection(registry.updateModel(create(UpdateModelRequestSchema, { name: "m1", version: "1", desiredReplicas: 6 })));
    expect(updated.rawMessage).toBe("desired_replicas is 6; the limit is 5");
    await registry.updateModel(create(UpdateModelRequestSchema, { name: "m1", version: "1", desiredReplicas: 5 }));
  });
});
