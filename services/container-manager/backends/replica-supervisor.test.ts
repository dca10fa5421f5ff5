import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { InputType } from "../../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema, type Replica, ReplicaState } from "../../../gen/clipper/v1/resources_pb.js";
import { createLogger } from "../../shared/index.js";
import type { ReplicaSpec } from "./replica-backend.js";
import { type HealthProbe, type LaunchOutcome, type ReplicaRunner, ReplicaSupervisor, type SupervisedReplica } from "./replica-supervisor.js";

/** A run of the fake runner: it exits when told to, and on SIGKILL (SIGTERM only when it heeds it). */
class FakeRun {
  readonly signals: string[] = [];
  heedsSigterm = true;
  private finish!: (what: string | undefined) => void;
  readonly exited = new Promise<string | undefined>((resolve) => (this.finish = resolve));
  constructor(
    readonly endpoint: string,
    private readonly describe: () => string,
  ) {}
  exit(what: string): void {
    this.finish(what);
  }
  signal(signal: string): void {
    this.signals.push(signal);
    if (signal === "SIGKILL" || this.heedsSigterm) this.finish(this.describe());
  }
}

type Own = { tag: string };
type Launch = (r: SupervisedReplica<FakeRun, Own>, cancelled: AbortSignal) => Promise<LaunchOutcome<FakeRun>>;

const spec: ReplicaSpec = {
  modelName: "m",
  modelVersion: "1",
  inputType: InputType.DOUBLES,
  runtime: create(ModelRuntimeSchema, { kind: { case: "command", value: { argv: ["model"], env: {}, workingDir: "/" } } }),
};

describe("ReplicaSupervisor (fake runner, fake clock)", () => {
  let runs: FakeRun[];
  /** What each endpoint's health check answers (undefined: SERVING); a function that never settles models a hung process. */
  let health: Map<string, () => Promise<string | undefined>>;
  let checks: string[];
  let ended: FakeRun[];
  let released: string[];
  let removed: string[];
  let launch: Launch;
  let overMemory: string | undefined;
  let snapshots: { state: ReplicaState; message: string; removed: boolean }[];

  const startedRun = (r: SupervisedReplica<FakeRun, Own>): LaunchOutcome<FakeRun> => {
    const run = new FakeRun(`127.0.0.1:${1000 + runs.length}`, () => r.killReason ?? "exited with code 0");
    runs.push(run);
    return { kind: "started", run, endpoint: run.endpoint, metricsEndpoint: "127.0.0.1:9", exited: run.exited };
  };

  const supervisor = (overrides: { startTimeoutMs?: number } = {}) => {
    const runner: ReplicaRunner<FakeRun, Own> = {
      launch: (r, cancelled) => launch(r, cancelled),
      signal: (_r, run, signal) => run.signal(signal),
      ended: (_r, run) => void ended.push(run),
      beforeHealthCheck: () => overMemory,
      release: (r) => void released.push(r.status.id),
      removed: (r) => void removed.push(r.status.id),
    };
    const probe = (endpoint: string): HealthProbe => ({
      check: () => {
        checks.push(endpoint);
        return (health.get(endpoint) ?? (async () => undefined))();
      },
      close: () => undefined,
    });
    const s = new ReplicaSupervisor<FakeRun, Own>({
      runner,
      logger: createLogger({ service: "supervisor-test", level: "silent" }),
      healthProbe: probe,
      healthIntervalMs: 100,
      healthTimeoutMs: 50,
      unhealthyAfterChecks: 3,
      restartAfterChecks: 5,
      startTimeoutMs: overrides.startTimeoutMs ?? 10_000,
      stopGraceMs: 1000,
      failureLogLines: 5,
      restartPolicy: { initialDelayMs: 500, maxDelayMs: 4000, stableAfterMs: 60_000, maxStartFailures: 3 },
    });
    s.onChange((replica: Replica, gone) => snapshots.push({ state: replica.state, message: replica.message, removed: gone }));
    return s;
  };
  const only = (s: ReplicaSupervisor<FakeRun, Own>) => {
    const [replica] = s.replicas();
    if (replica === undefined) throw new Error("no replica");
    return replica;
  };
  const logText = (s: ReplicaSupervisor<FakeRun, Own>, id: string) => (s.logs(id, 100) ?? []).map((l) => `${l.stream} ${l.text}`);

  beforeEach(() => {
    vi.useFakeTimers();
    runs = [];
    health = new Map();
    checks = [];
    ended = [];
    released = [];
    removed = [];
    overMemory = undefined;
    snapshots = [];
    launch = async (r) => startedRun(r);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("starts a replica STARTING, READY at its first good health check, with its endpoint and a fresh start time", async () => {
    const s = supervisor();
    const first = s.start(spec, (id) => ({ tag: id }));
    expect(first.state).toBe(ReplicaState.STARTING);
    expect(s.get(first.id)?.own).toEqual({ tag: first.id });
    await vi.advanceTimersByTimeAsync(0);
    expect(only(s)).toMatchObject({ state: ReplicaState.STARTING, endpoint: "127.0.0.1:1000" });
    expect(s.get(first.id)?.metricsEndpoint).toBe("127.0.0.1:9");
    await vi.advanceTimersByTimeAsync(100);
    expect(only(s)).toMatchObject({ state: ReplicaState.READY, message: "" });
    expect(snapshots.map((x) => x.state)).toEqual([ReplicaState.STARTING, ReplicaState.STARTING, ReplicaState.READY]);
    // One check per interval, no more.
    await vi.advanceTimersByTimeAsync(1000);
    expect(checks).toHaveLength(11);
  });

  it("a READY replica is UNHEALTHY after failed checks in a row, killed after more, and restarted after the policy's delay", async () => {
    const s = supervisor();
    const { id } = s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(100);
    expect(only(s).state).toBe(ReplicaState.READY);
    health.set("127.0.0.1:1000", async () => "connection refused");
    await vi.advanceTimersByTimeAsync(300);
    expect(only(s)).toMatchObject({ state: ReplicaState.UNHEALTHY, message: "health check failed 3 times: connection refused" });
    await vi.advanceTimersByTimeAsync(200);
    expect(runs[0]?.signals).toEqual(["SIGKILL"]);
    expect(ended).toEqual([runs[0]]);
    const killed = "killed after 5 failed health checks in a row (last: connection refused)";
    expect(only(s)).toMatchObject({ state: ReplicaState.UNHEALTHY, message: `${killed}; restarting in 500 ms` });
    expect(logText(s, id)).toContain(`manager ${killed}`);
    await vi.advanceTimersByTimeAsync(499);
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(2);
    expect(only(s)).toMatchObject({ state: ReplicaState.STARTING, restarts: 1, endpoint: "127.0.0.1:1001" });
    await vi.advanceTimersByTimeAsync(100);
    expect(only(s)).toMatchObject({ state: ReplicaState.READY, message: `ready; restarted after: ${killed}` });
  });

  it("kills a replica not ready within the start timeout, and makes it FAILED after the policy's start failures, quoting its log", async () => {
    const s = supervisor({ startTimeoutMs: 1000 });
    health.set("127.0.0.1:1000", async () => "not serving yet");
    health.set("127.0.0.1:1001", async () => "not serving yet");
    health.set("127.0.0.1:1002", async () => "not serving yet");
    const { id } = s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(1100);
    expect(runs[0]?.signals).toEqual(["SIGKILL"]);
    expect(only(s).message).toBe("not ready within 1 s (last health check: not serving yet); restarting in 500 ms");
    await vi.advanceTimersByTimeAsync(500 + 1100 + 1000 + 1100);
    expect(runs).toHaveLength(3);
    const failed = only(s);
    expect(failed.state).toBe(ReplicaState.FAILED);
    expect(failed.message).toMatch(
      /^not ready within 1 s \(last health check: not serving yet\); it stopped 3 times in a row before becoming ready; last log lines:\n/,
    );
    expect(failed.message).toContain("manager not ready within 1 s");
    // FAILED is final: no more checks, no restart.
    const checked = checks.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(checks).toHaveLength(checked);
    expect(runs).toHaveLength(3);
    expect(logText(s, id).at(-1)).toMatch(/^manager replica failed: not ready within 1 s/);
  });

  it("a launch that cannot be made is FAILED at once; a run that ends before it starts counts as a failed run", async () => {
    launch = async () => ({ kind: "failed", reason: "cannot launch: no such runtime" });
    const s = supervisor();
    s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(0);
    expect(only(s).state).toBe(ReplicaState.FAILED);
    expect(only(s).message).toMatch(/^cannot launch: no such runtime; last log lines:\n/);

    let attempts = 0;
    launch = async (r) => (++attempts < 3 ? { kind: "exited", what: "could not start its container: bad mount" } : startedRun(r));
    const t = supervisor();
    const { id } = t.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(0);
    expect(t.replicas().find((r) => r.id === id)).toMatchObject({
      state: ReplicaState.UNHEALTHY,
      message: "could not start its container: bad mount; restarting in 500 ms",
    });
    await vi.advanceTimersByTimeAsync(500 + 1000 + 100);
    expect(t.replicas().find((r) => r.id === id)).toMatchObject({ state: ReplicaState.READY, restarts: 2 });
  });

  it("a launch that throws is FAILED with the error", async () => {
    launch = async () => {
      throw new Error("spawn EACCES");
    };
    const s = supervisor();
    s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(0);
    expect(only(s).message).toMatch(/^cannot launch: Error: spawn EACCES; last log lines:/);
  });

  it("kills a run the backend's own check condemns (its memory) before asking its health", async () => {
    const s = supervisor();
    s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(100);
    overMemory = "killed for exceeding the memory limit";
    await vi.advanceTimersByTimeAsync(100);
    expect(runs[0]?.signals).toEqual(["SIGKILL"]);
    expect(checks).toHaveLength(1);
    expect(only(s).message).toBe("killed for exceeding the memory limit; restarting in 500 ms");
  });

  it("stops with a grace: SIGTERM, SIGKILL when the run outlasts it; STOPPING, then removed, cleaned up once", async () => {
    const s = supervisor();
    const { id } = s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(100);
    const run = runs[0] as FakeRun;
    run.heedsSigterm = false;
    const stopped = s.stop(id);
    expect(s.stop(id)).toBe(stopped);
    expect(only(s)).toMatchObject({ state: ReplicaState.STOPPING, message: "stopping" });
    await vi.advanceTimersByTimeAsync(999);
    expect(run.signals).toEqual(["SIGTERM"]);
    await vi.advanceTimersByTimeAsync(1);
    await stopped;
    expect(run.signals).toEqual(["SIGTERM", "SIGKILL"]);
    expect(ended).toEqual([run]);
    expect(removed).toEqual([id]);
    expect(s.replicas()).toEqual([]);
    expect(snapshots.at(-1)).toMatchObject({ state: ReplicaState.STOPPING, removed: true });
    // No restart of a stopped replica, and no check after it.
    const checked = checks.length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(runs).toHaveLength(1);
    expect(checks).toHaveLength(checked);
  });

  it("a run that heeds SIGTERM is not sent SIGKILL; an unknown id stops at once", async () => {
    const s = supervisor();
    const { id } = s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(100);
    await s.stop(id);
    expect(runs[0]?.signals).toEqual(["SIGTERM"]);
    await s.stop("nope");
  });

  it("a stop during a launch waits for it and stops what it started", async () => {
    let finishLaunch!: () => void;
    launch = (r) =>
      new Promise((resolve) => {
        finishLaunch = () => resolve(startedRun(r));
      });
    const s = supervisor();
    const { id } = s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(0);
    const stopped = s.stop(id);
    finishLaunch();
    await vi.advanceTimersByTimeAsync(0);
    await stopped;
    expect(runs[0]?.signals).toEqual(["SIGTERM"]);
    expect(ended).toEqual([runs[0]]);
    expect(checks).toEqual([]);
    expect(s.replicas()).toEqual([]);
  });

  it("release lets go of every replica: a check in flight at the handover acts on nothing, and a later exit is not its business", async () => {
    const s = supervisor();
    const { id } = s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(100);
    // Two failed checks, then a hung process: its third check is out when the handover comes (one more failure would make it UNHEALTHY).
    health.set("127.0.0.1:1000", async () => "deadline exceeded");
    await vi.advanceTimersByTimeAsync(200);
    let answer!: (problem: string) => void;
    health.set("127.0.0.1:1000", () => new Promise((resolve) => (answer = resolve)));
    await vi.advanceTimersByTimeAsync(100);
    expect(checks).toHaveLength(4);
    const before = snapshots.length;
    await s.release();
    expect(released).toEqual([id]);
    expect(s.replicas()).toEqual([]);
    answer("deadline exceeded");
    health.set("127.0.0.1:1000", async () => "closed");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(checks).toHaveLength(4);
    expect(runs[0]?.signals).toEqual([]);
    runs[0]?.exit("exited with code 1");
    await vi.advanceTimersByTimeAsync(1000);
    expect(ended).toEqual([]);
    expect(runs).toHaveLength(1);
    expect(snapshots).toHaveLength(before);
  });

  it("adopts a run READY as it was, its earlier log first, and restarts it like its own when it ends", async () => {
    const s = supervisor();
    let adoptedRun: FakeRun | undefined;
    s.adopt(
      {
        id: "abcd",
        spec,
        own: { tag: "adopted" },
        endpoint: "127.0.0.1:7000",
        metricsEndpoint: "127.0.0.1:7001",
        startedAtMs: 42,
        restarts: 2,
        message: "adopted from a previous container-manager (pid 7)",
        note: "adopted by container-manager pid 1",
        history: [{ timeMs: 1, stream: "stdout", text: "earlier output" }],
      },
      (r) => {
        adoptedRun = new FakeRun("127.0.0.1:7000", () => r.killReason ?? "exited (its exit status is unknown)");
        return { run: adoptedRun, exited: adoptedRun.exited };
      },
    );
    expect(only(s)).toMatchObject({ id: "abcd", state: ReplicaState.READY, endpoint: "127.0.0.1:7000", startedAtMs: 42n, restarts: 2 });
    expect(s.get("abcd")?.metricsEndpoint).toBe("127.0.0.1:7001");
    expect(logText(s, "abcd")).toEqual(["stdout earlier output", "manager adopted by container-manager pid 1"]);
    await vi.advanceTimersByTimeAsync(100);
    expect(checks).toEqual(["127.0.0.1:7000"]);
    adoptedRun?.exit("exited (its exit status is unknown)");
    await vi.advanceTimersByTimeAsync(0);
    expect(only(s).message).toBe("exited (its exit status is unknown); restarting in 500 ms");
    await vi.advanceTimersByTimeAsync(600);
    expect(only(s)).toMatchObject({
      state: ReplicaState.READY,
      restarts: 3,
      endpoint: "127.0.0.1:1000",
      message: "ready; restarted after: exited (its exit status is unknown)",
    });
  });

  it("a listener that throws does not stop the others", async () => {
    const s = supervisor();
    s.onChange(() => {
      throw new Error("listener bug");
    });
    const seen: ReplicaState[] = [];
    s.onChange((r) => seen.push(r.state));
    s.start(spec, () => ({ tag: "" }));
    await vi.advanceTimersByTimeAsync(100);
    expect(seen).toEqual([ReplicaState.STARTING, ReplicaState.STARTING, ReplicaState.READY]);
  });
});
