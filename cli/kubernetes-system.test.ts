/** The pure parts of finding a system on Kubernetes: a Service's ready endpoints from its pods, and the --kubeconfig/--namespace target. */
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { kubernetesTarget, readyEndpoints } from "./kubernetes-system.js";

function pod(name: string, labels: Record<string, string>, ip: string | undefined, ready: boolean, extra: Partial<NonNullable<V1Pod["metadata"]>> = {}): V1Pod {
  return {
    metadata: { name, labels, ...extra },
    spec: { containers: [{ name: "c", ports: [{ name: "grpc", containerPort: 1338 }] }] },
    status: { ...(ip === undefined ? {} : { podIP: ip }), conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  };
}

describe("readyEndpoints", () => {
  const app = { "app.kubernetes.io/name": "clipper-registry" };
  it("takes the selector's Ready pods with an IP, not being deleted, at the target port (named ones looked up), sorted", () => {
    const pods = [
      pod("b", app, "10.0.0.2", true),
      pod("a", { ...app, extra: "x" }, "10.0.0.1", true),
      pod("not-ready", app, "10.0.0.3", false),
      pod("no-ip", app, undefined, true),
      pod("deleting", app, "10.0.0.4", true, { deletionTimestamp: new Date() }),
      pod("other", { "app.kubernetes.io/name": "clipper-router" }, "10.0.0.5", true),
      pod("v6", app, "fd00::1", true),
    ];
    expect(readyEndpoints(app, "grpc", pods)).toEqual(["10.0.0.1:1338", "10.0.0.2:1338", "[fd00::1]:1338"]);
    expect(readyEndpoints(app, 9338, pods)).toEqual(["10.0.0.1:9338", "10.0.0.2:9338", "[fd00::1]:9338"]);
    expect(readyEndpoints(app, "metrics", pods)).toEqual([]);
    // A Service without a selector has no endpoints from pods.
    expect(readyEndpoints({}, "grpc", pods)).toEqual([]);
  });
});

describe("kubernetesTarget", () => {
  it("is undefined without --kubeconfig, and reads the flags over the environment", () => {
    expect(kubernetesTarget({}, {}, "default")).toBeUndefined();
    expect(kubernetesTarget({}, { CLIPPER_NAMESPACE: "ns" }, "default")).toBeUndefined();
    expect(kubernetesTarget({ kubeconfig: "/k" }, {}, "prod")).toEqual({ kubeconfig: "/k", namespace: "clipper", cluster: "prod" });
    expect(kubernetesTarget({}, { CLIPPER_KUBECONFIG: "/e", CLIPPER_NAMESPACE: "team-a" }, "default")).toEqual({
      kubeconfig: "/e",
      namespace: "team-a",
      cluster: "default",
    });
    expect(kubernetesTarget({ kubeconfig: "/k", namespace: "n1" }, { CLIPPER_NAMESPACE: "n2" }, "default")?.namespace).toBe("n1");
  });
  it("refuses --namespace alone and a namespace that is not a DNS label", () => {
    expect(() => kubernetesTarget({ namespace: "ns" }, {}, "default")).toThrow("--namespace is for a system on Kubernetes: give --kubeconfig too");
    expect(() => kubernetesTarget({ kubeconfig: "/k", namespace: "Bad_NS" }, {}, "default")).toThrow('namespace "Bad_NS" is not valid');
  });
});
