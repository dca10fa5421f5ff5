import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { kernelRecordsOomKill } from "./kernel-oom-log.js";

describe("kernelRecordsOomKill", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-kmsg-"));
  const log = path.join(dir, "kmsg");
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("finds the OOM kill of the container's memory cgroup, and only that container's", () => {
    fs.writeFileSync(
      log,
      "6,1234,1771958145,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),oom_memcg=/libpod_parent/libpod-d4e488ea,task_memcg=/libpod_parent/libpod-d4e488ea,task=python3,pid=7915,uid=10001\n",
    );
    expect(kernelRecordsOomKill("d4e488ea", log)).toBe(true);
    expect(kernelRecordsOomKill("0badc0de", log)).toBe(false);
  });

  it("is false when the log cannot be read", () => {
    expect(kernelRecordsOomKill("d4e488ea", path.join(dir, "absent"))).toBe(false);
  });
});
