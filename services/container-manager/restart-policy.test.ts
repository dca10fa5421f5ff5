import { describe, expect, it } from "vitest";
import { RestartPolicy } from "./restart-policy.js";

const options = { initialDelayMs: 500, maxDelayMs: 30_000, stableAfterMs: 60_000, maxStartFailures: 3 };

describe("RestartPolicy", () => {
  it("doubles the delay from 0.5 s up to 30 s for a replica that keeps crashing after being ready", () => {
    const policy = new RestartPolicy(options);
    const delays = Array.from({ length: 9 }, () => policy.onExit(1_000, true));
    expect(delays.map((d) => (d.action === "restart" ? d.delayMs : -1))).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it("resets the delay after a stable run", () => {
    const policy = new RestartPolicy(options);
    policy.onExit(1_000, true);
    policy.onExit(1_000, true);
    expect(policy.onExit(60_000, true)).toEqual({ action: "restart", delayMs: 500 });
  });

  it("fails after repeated exits before ever becoming ready", () => {
    const policy = new RestartPolicy(options);
    expect(policy.onExit(10, false)).toEqual({ action: "restart", delayMs: 500 });
    expect(policy.onExit(10, false)).toEqual({ action: "restart", delayMs: 1000 });
    expect(policy.onExit(10, false)).toEqual({ action: "fail", startFailures: 3 });
  });

  it("counts only start failures in a row", () => {
    const policy = new RestartPolicy(options);
    policy.onExit(10, false);
    policy.onExit(10, false);
    expect(policy.onExit(5_000, true).action).toBe("restart");
    expect(policy.onExit(10, false).action).toBe("restart");
    expect(policy.onExit(10, false).action).toBe("restart");
    expect(policy.onExit(10, false).action).toBe("fail");
  });
});
