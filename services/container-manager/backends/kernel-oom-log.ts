import fs from "node:fs";

/** The kernel log's records read at most (its ring buffer holds far fewer on a normal machine). */
const MAX_RECORDS = 100_000;

/**
 * Whether the kernel's log (/dev/kmsg) holds an OOM kill in the memory cgroup
 * of this container (`oom-kill:... oom_memcg=/libpod_parent/libpod-<id>` for
 * Podman, `/docker/<id>` for Docker). A fallback for engines that do not set
 * State.OOMKilled: Podman 4.3 on cgroups v1 reports an OOM-killed container
 * as a plain exit 137. False when the log cannot be read (not root, another
 * machine's engine).
 */
export function kernelRecordsOomKill(containerId: string, kmsgPath = "/dev/kmsg"): boolean {
  let fd: number;
  try {
    fd = fs.openSync(kmsgPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    // Each read returns one record, oldest first; EAGAIN after the newest.
    const record = Buffer.alloc(8192);
    for (let i = 0; i < MAX_RECORDS; i++) {
      let length: number;
      try {
        length = fs.readSync(fd, record, 0, record.length, null);
      } catch (err) {
        // EPIPE: records were overwritten while reading; the next read goes on from the oldest left.
        if ((err as NodeJS.ErrnoException).code === "EPIPE") continue;
        return false;
      }
      if (length === 0) return false;
      const text = record.toString("utf8", 0, length);
      if (text.includes("oom-kill:") && text.includes(containerId)) return true;
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}
