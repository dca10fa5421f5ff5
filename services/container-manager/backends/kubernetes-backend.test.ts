import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { deploymentName, labelValue, podProblem } from "./kubernetes-backend.js";

describe("kubernetes backend naming", () => {
  it("makes DNS-safe Deployment names, short enough for their pods' names, distinct for names that sanitize alike", () => {
    const a = deploymentName("prod", "My_Model", "v1.2");
    expect(a).toMatch(/^clipper-prod-my-model-v1-2-[0-9a-f]{8}$/);
    expect(deploymentName("prod", "my-model", "v1-2")).not.toBe(a);
    const long = deploymentName("c".repeat(40), "m".repeat(100), "v".repeat(100));
    expect(long.length).toBeLessThanOrEqual(46);
    expect(long).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    // <deployment>-<pod-template-hash, up to 10>-<5>
    expect(long.length + 1 + 10 + 1 + 5).toBeLessThanOrEqual(63);
    expect(deploymentName("prod", "m", "1")).toBe(deploymentName("prod", "m", "1"));
  });

  it("sanitizes label values: allowed characters, 63 at most, alphanumeric at both ends", () => {
    expect(labelValue("sum")).toBe("sum");
    expect(labelValue("a b/c")).toBe("a-b-c");
    expect(labelValue("-x-")).toBe("x");
    expect(labelValue("v".repeat(80))).toHaveLength(63);
  });
});

describe("podProblem", () => {
  const pod = (status: NonNullable<V1Pod["status"]>): V1Pod => ({ status });
  it("names what will not fix itself", () => {
    expect(
      podProblem(
        pod({ phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes: Insufficient cpu" }] }),
      ),
    ).toBe("unschedulable: 0/1 nodes: Insufficient cpu");
    expect(
      podProblem(
        pod({
          phase: "Pending",
          containerStatuses: [
            {
              name: "model",
              image: "x",
              imageID: "",
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: "ImagePullBackOff", message: "no such image" } },
            },
          ],
        }),
      ),
    ).toBe("container model ImagePullBackOff: no such image");
    expect(podProblem(pod({ phase: "Failed", reason: "Evicted", message: "low memory" }))).toBe("pod failed: Evicted low memory");
  });
  it("is undefined for a pod on its way", () => {
    expect(podProblem(pod({ phase: "Pending" }))).toBeUndefined();
    expect(
      podProblem(
        pod({
          phase: "Pending",
          containerStatuses: [{ name: "model", image: "x", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } } }],
        }),
      ),
    ).toBeUndefined();
  });
});
