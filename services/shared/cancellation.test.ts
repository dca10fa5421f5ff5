import { describe, expect, it } from "vitest";
import { Cancellation, toAbortSignal } from "./cancellation.js";

describe("Cancellation", () => {
  it("tells its listener once, and not after it is removed", () => {
    const c = new Cancellation();
    const heard: string[] = [];
    const first = () => heard.push("first");
    c.addEventListener("abort", first);
    c.removeEventListener("abort", first);
    c.addEventListener("abort", () => heard.push("second"));
    c.abort();
    c.abort();
    expect(c.aborted).toBe(true);
    expect(heard).toEqual(["second"]);
  });

  it("becomes an AbortSignal that follows it, for clients that need one", () => {
    const c = new Cancellation();
    const signal = toAbortSignal(c);
    expect(signal.aborted).toBe(false);
    c.abort();
    expect(signal.aborted).toBe(true);
    const already = new Cancellation();
    already.abort();
    expect(toAbortSignal(already).aborted).toBe(true);
    const real = new AbortController().signal;
    expect(toAbortSignal(real)).toBe(real);
  });
});
