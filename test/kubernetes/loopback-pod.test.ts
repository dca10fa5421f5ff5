/** The loopback kubelet's pure parts: path mapping, $(VAR) expansion, probes, a pod's process, addresses, its status. */
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { AddressPool, expandVariables, LineRing, localProcess, mapPaths, podStatus, readinessCheck } from "./loopback-pod.js";

const pathMap = { "/opt/clipper": "/home/me/clipper", "/var/lib/clipper": "/tmp/data" };

function pod(container: Record<string, unknown>, extra: Partial<NonNullable<V1Pod["spec"]>> = {}): V1Pod {
  return {
    metadata: { name: "m-1-abc", namespace: "ns1", uid: "u1" },
    spec: { containers: [{ name: "model", image: "img:1", ...container }], ...extra },
  };
}

const options = { pathMap, commandMap: { python3: "/venv/bin/python" }, baseEnv: { PATH: "/usr/bin", HOME: "/root" }, nodeName: "loopback-node-0" };

describe("mapPaths", () => {
  it("moves paths under a mapped prefix, in :-separated lists too, and leaves the rest", () => {
    expect(mapPaths("/opt/clipper/sdk/python/src", pathMap)).toBe("/home/me/clipper/sdk/python/src");
    expect(mapPaths("/opt/clipper", pathMap)).toBe("/home/me/clipper");
    expect(mapPaths("/opt/clipperx/y", pathMap)).toBe("/opt/clipperx/y");
    expect(mapPaths("/var/lib/clipper/a:/opt/clipper/b:/usr/lib", pathMap)).toBe("/tmp/data/a:/home/me/clipper/b:/usr/lib");
    expect(mapPaths("-m", pathMap)).toBe("-m");
    // The longest prefix wins.
    expect(mapPaths("/a/b/c", { "/a": "/x", "/a/b": "/y" })).toBe("/y/c");
  });
});

describe("expandVariables", () => {
  it("replaces defined $(VAR), keeps undefined ones and $$(VAR) as written, as the kubelet does", () => {
    const env = { PORT: "7000", NAME: "m" };
    expect(expandVariables("--port=$(PORT)", env)).toBe("--port=7000");
    expect(expandVariables("$(NAME)-$(MISSING)", env)).toBe("m-$(MISSING)");
    expect(expandVariables("$$(PORT)", env)).toBe("$(PORT)");
    expect(expandVariables("plain $HOME", env)).toBe("plain $HOME");
  });
});

describe("readinessCheck", () => {
  it("fills Kubernetes' defaults and takes the pod's values", () => {
    expect(readinessCheck(undefined)).toEqual({
      action: undefined,
      periodMs: 10_000,
      timeoutMs: 1_000,
      failureThreshold: 3,
      successThreshold: 1,
      initialDelayMs: 0,
    });
    expect(readinessCheck({ grpc: { port: 7000 }, periodSeconds: 2, failureThreshold: 3 })).toMatchObject({
      action: { kind: "grpc", port: 7000, service: "" },
      periodMs: 2_000,
      failureThreshold: 3,
    });
  });
  it("runs HTTP and TCP probes, their named ports looked up in the container's", () => {
    const ports = [{ name: "http", containerPort: 1337 }];
    expect(readinessCheck({ httpGet: { port: "http", path: "/readyz" } }, ports)).toMatchObject({ action: { kind: "http", port: 1337, path: "/readyz" } });
    expect(readinessCheck({ tcpSocket: { port: 6379 } })).toMatchObject({ action: { kind: "tcp", port: 6379 } });
    expect(readinessCheck({ tcpSocket: { port: "redis" } }, ports)).toBe('the probe\'s port "redis" is no port of the container');
  });
  it("names a probe kind it does not run", () => {
    expect(readinessCheck({ exec: { command: ["redis-cli", "ping"] } })).toBe(
      "the loopback kubelet runs gRPC, HTTP and TCP readiness probes (no exec: there is no image to run it in)",
    );
    expect(readinessCheck({ httpGet: { port: 443, scheme: "HTTPS" } })).toBe("the loopback kubelet runs HTTP probes, not HTTPS");
  });
});

describe("localProcess", () => {
  it("runs command and args with the pod's env over the base, its address as CLIPPER_MODEL_HOST, image paths mapped", () => {
    const p = localProcess(
      pod({
        command: ["python3"],
        args: ["-m", "clipper_runtime.closure_runner", "--port=$(CLIPPER_MODEL_PORT)"],
        workingDir: "/var/lib/clipper",
        env: [
          { name: "CLIPPER_MODEL_HOST", value: "0.0.0.0" },
          { name: "CLIPPER_MODEL_PORT", value: "7000" },
          { name: "PYTHONPATH", value: "/opt/clipper/sdk/python/src" },
          { name: "CLIPPER_ARTIFACT", value: "/var/lib/clipper/artifacts/sha256/ab" },
          { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
        ],
        readinessProbe: { grpc: { port: 7000 }, periodSeconds: 2 },
      }),
      "127.9.9.2",
      options,
    );
    if (typeof p === "string") throw new Error(p);
    expect(p.command).toBe("/venv/bin/python");
    expect(p.args).toEqual(["-m", "clipper_runtime.closure_runner", "--port=7000"]);
    expect(p.cwd).toBe("/tmp/data");
    expect(p.env).toEqual({
      PATH: "/usr/bin",
      HOME: "/root",
      CLIPPER_MODEL_HOST: "127.9.9.2",
      CLIPPER_MODEL_PORT: "7000",
      PYTHONPATH: "/home/me/clipper/sdk/python/src",
      CLIPPER_ARTIFACT: "/tmp/data/artifacts/sha256/ab",
      POD: "m-1-abc",
      IP: "127.9.9.2",
    });
    expect(p.readiness.action).toEqual({ kind: "grpc", port: 7000, service: "" });
  });

  it("maps an emptyDir volume's mountPath to the pod's own directory, over pathMap", () => {
    const withVolume: V1Pod = {
      metadata: { name: "m-1-abc" },
      spec: {
        containers: [{ name: "model", command: ["python3"], workingDir: "/var/lib/clipper", volumeMounts: [{ name: "data", mountPath: "/var/lib/clipper" }] }],
        volumes: [{ name: "data", emptyDir: {} }],
      },
    };
    const p = localProcess(withVolume, "127.9.9.2", { ...options, emptyDirs: { data: "/tmp/kubelet/uid-volumes/data" } });
    if (typeof p === "string") throw new Error(p);
    expect(p.cwd).toBe("/tmp/kubelet/uid-volumes/data");
  });

  it("says why a pod cannot run here", () => {
    expect(localProcess(pod({}), "127.0.0.2", options)).toBe("container model has no command: the loopback kubelet knows no image's entrypoint");
    const two: V1Pod = { spec: { containers: [{ name: "a" }, { name: "b" }] } };
    expect(localProcess(two, "127.0.0.2", options)).toBe("the loopback kubelet runs pods of exactly one container, this one has 2");
    expect(localProcess(pod({ command: ["x"], env: [{ name: "S", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }] }), "127.0.0.2", options)).toBe(
      'container model: env S: key "k" of "s" not found',
    );
    expect(
      localProcess(pod({ command: ["x"], env: [{ name: "S", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } }] }), "127.0.0.2", options),
    ).toMatch(/^container model: env S: the loopback kubelet resolves only fieldRef of metadata.name, .*, configMapKeyRef and secretKeyRef$/);
    expect(localProcess(pod({ command: ["x"], envFrom: [{ configMapRef: { name: "c" } }] }), "127.0.0.2", options)).toBe(
      'container model: envFrom configmap "c" not found',
    );
    expect(localProcess(pod({ command: ["x"], readinessProbe: { exec: { command: ["true"] } } }), "127.0.0.2", options)).toMatch(
      /^container model: the loopback kubelet runs gRPC, HTTP and TCP readiness probes/,
    );
    expect(localProcess(pod({ command: ["x"] }, { initContainers: [{ name: "i" }] }), "127.0.0.2", options)).toBe(
      "the loopback kubelet runs no init containers",
    );
  });
});

describe("localProcess of a service's pod", () => {
  it("reads envFrom and key refs, binds 0.0.0.0 to the pod's address, resolves Service names, and gives the ServiceAccount's kubeconfig", () => {
    const p = localProcess(
      pod({
        command: ["node", "/opt/clipper/dist/gateway/main.mjs"],
        args: ["--host", "0.0.0.0", "--router", "clipper-router:1339", "--registry", "clipper-registry.ns1.svc:1338", "--name", "clipper-router"],
        envFrom: [{ configMapRef: { name: "settings" } }],
        env: [
          { name: "URL", valueFrom: { secretKeyRef: { name: "creds", key: "url" } } },
          { name: "OVER", value: "env wins" },
        ],
      }),
      "127.9.9.3",
      {
        ...options,
        sources: {
          configMaps: { settings: { STORE: "redis://clipper-redis:6379", OVER: "configmap" } },
          secrets: { creds: { url: "redis://u:p@elsewhere:6379" } },
        },
        resolveHost: (host) => ({ "clipper-router": "127.5.5.1", "clipper-registry.ns1.svc": "127.5.5.2", "clipper-redis": "127.5.5.3" })[host],
        serviceAccountKubeconfig: "/tmp/sa.kubeconfig",
      },
    );
    if (typeof p === "string") throw new Error(p);
    expect(p.args).toEqual([
      "/home/me/clipper/dist/gateway/main.mjs",
      "--host",
      "127.9.9.3",
      "--router",
      "127.5.5.1:1339",
      "--registry",
      "127.5.5.2:1338",
      "--name",
      "clipper-router",
    ]);
    expect(p.env).toMatchObject({ STORE: "redis://127.5.5.3:6379", OVER: "env wins", URL: "redis://u:p@elsewhere:6379", KUBECONFIG: "/tmp/sa.kubeconfig" });
  });
});

describe("AddressPool", () => {
  it("hands out distinct addresses in 127.A.B.0/24, skips unusable ones, takes released ones back, and is bounded", async () => {
    const pool = new AddressPool(3, [7, 8]);
    const all = async () => true;
    expect(await pool.take(all)).toBe("127.7.8.2");
    expect(await pool.take(async (a) => a !== "127.7.8.3")).toBe("127.7.8.4");
    expect(await pool.take(all)).toBe("127.7.8.3");
    expect(await pool.take(all)).toBeUndefined();
    pool.release("127.7.8.2");
    pool.release("127.7.8.2");
    expect(await pool.take(all)).toBe("127.7.8.2");
    expect(await pool.take(all)).toBeUndefined();
    expect(() => new AddressPool(300)).toThrow(/does not fit/);
    const random = new AddressPool(1);
    expect(await random.take(all)).toMatch(/^127\.(\d+)\.(\d+)\.2$/);
  });
});

describe("podStatus", () => {
  const base = { pod: pod({ command: ["x"] }), address: "127.1.1.2", restarts: 0, last: undefined, startTime: new Date(0) };
  const cond = (s: ReturnType<typeof podStatus>, type: string) => s.conditions?.find((c) => c.type === type)?.status;

  it("running and ready: Running, the pod IP, Ready and ContainersReady True", () => {
    const s = podStatus({ ...base, container: { kind: "running", startedAt: new Date(1) }, ready: true });
    expect(s.phase).toBe("Running");
    expect(s.podIP).toBe("127.1.1.2");
    expect(cond(s, "Ready")).toBe("True");
    expect(cond(s, "ContainersReady")).toBe("True");
    expect(s.containerStatuses?.[0]).toMatchObject({ name: "model", ready: true, started: true, restartCount: 0 });
  });

  it("running, check failing: Running but not Ready", () => {
    const s = podStatus({ ...base, container: { kind: "running", startedAt: new Date(1) }, ready: false });
    expect(s.phase).toBe("Running");
    expect(cond(s, "Ready")).toBe("False");
    expect(s.conditions?.find((c) => c.type === "Ready")?.reason).toBe("ContainersNotReady");
  });

  it("crashed and waiting to restart: CrashLoopBackOff, the restart count, the last termination with its output", () => {
    const s = podStatus({
      ...base,
      container: { kind: "backoff", message: "back-off 1s restarting failed container" },
      ready: true,
      restarts: 2,
      last: { exitCode: 1, signal: undefined, startedAt: new Date(1), finishedAt: new Date(2), message: "Traceback: boom" },
    });
    expect(s.phase).toBe("Running");
    expect(cond(s, "Ready")).toBe("False");
    expect(s.containerStatuses?.[0]?.state?.waiting?.reason).toBe("CrashLoopBackOff");
    expect(s.containerStatuses?.[0]?.restartCount).toBe(2);
    expect(s.containerStatuses?.[0]?.lastState?.terminated).toMatchObject({ exitCode: 1, reason: "Error", message: "Traceback: boom" });
  });

  it("a pod that cannot run: Pending, CreateContainerConfigError with the reason, no pod IP", () => {
    const s = podStatus({ ...base, container: { kind: "config-error", message: "no command" }, ready: false });
    expect(s.phase).toBe("Pending");
    expect(s.podIP).toBeUndefined();
    expect(s.containerStatuses?.[0]?.state?.waiting).toEqual({ reason: "CreateContainerConfigError", message: "no command" });
  });

  it("restartPolicy Never: Succeeded or Failed by the exit code", () => {
    expect(podStatus({ ...base, container: { kind: "exited", exitCode: 0, finishedAt: new Date(3) }, ready: false }).phase).toBe("Succeeded");
    expect(podStatus({ ...base, container: { kind: "exited", exitCode: 3, finishedAt: new Date(3) }, ready: false }).phase).toBe("Failed");
  });
});

describe("LineRing", () => {
  it("keeps the last lines, and a tail of at most n bytes", () => {
    const ring = new LineRing(3);
    for (const l of ["a", "b", "c", "d"]) ring.push(l);
    expect(ring.last()).toEqual(["b", "c", "d"]);
    expect(ring.tail(3)).toBe("c\nd");
    expect(ring.tail(100)).toBe("b\nc\nd");
  });
});
