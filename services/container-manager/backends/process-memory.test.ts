import { describe, expect, it } from "vitest";
import { formatMiB, residentBytes } from "./process-memory.js";

describe("residentBytes", () => {
  it.skipIf(process.platform !== "linux")("reads this process's resident memory", () => {
    const rss = residentBytes(process.pid);
    expect(rss).toBeGreaterThan(1_048_576);
    // VmRSS and process.memoryUsage().rss are the same figure, read moments apart.
    expect(Math.abs((rss ?? 0) - process.memoryUsage().rss)).toBeLessThan(64 * 1_048_576);
  });

  it("is undefined for a process that does not exist", () => {
    expect(residentBytes(2 ** 22 + 12345)).toBeUndefined();
  });

  it("formats MiB", () => {
    expect(formatMiB(300 * 1_048_576)).toBe("300 MiB");
  });
});
