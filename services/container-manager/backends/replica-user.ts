import { spawnSync } from "node:child_process";
import fs from "node:fs";

/** The unprivileged user replicas run as (`--replica-user`): spawn's uid and gid, and the HOME they get. */
export interface ReplicaUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** One line of passwd(5), `name:password:uid:gid:gecos:home:shell`, as a ReplicaUser; undefined if malformed. */
export function parsePasswdLine(line: string): ReplicaUser | undefined {
  const [name = "", , uid = "", gid = "", , home = ""] = line.trim().split(":");
  if (name === "" || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) return undefined;
  return { name, uid: Number(uid), gid: Number(gid), home: home === "" ? "/" : home };
}

/**
 * The user named by `--replica-user`: a name or a numeric uid, looked up with
 * getent (so NSS users count too), else in /etc/passwd. Throws naming the flag
 * when there is no such user, or when this process cannot switch to it.
 */
export function resolveReplicaUser(spec: string, currentUid = process.getuid?.() ?? -1): ReplicaUser {
  const user = lookUp(spec);
  if (user === undefined) throw new Error(`--replica-user ${spec}: no such user (neither getent passwd nor /etc/passwd knows it)`);
  if (user.uid === 0) throw new Error(`--replica-user ${spec} is root: name an unprivileged user (e.g. nobody), or leave the flag out`);
  if (currentUid !== 0 && currentUid !== user.uid) {
    throw new Error(
      `--replica-user ${spec} needs the container-manager to run as root (it runs as uid ${currentUid}); without root, replicas already run as its own user`,
    );
  }
  return user;
}

function lookUp(spec: string): ReplicaUser | undefined {
  const getent = spawnSync("getent", ["passwd", spec], { encoding: "utf8", timeout: 5000 });
  if (getent.status === 0) return parsePasswdLine(getent.stdout.split("\n")[0] ?? "");
  let passwd: string;
  try {
    passwd = fs.readFileSync("/etc/passwd", "utf8");
  } catch {
    return undefined;
  }
  for (const line of passwd.split("\n")) {
    const user = parsePasswdLine(line);
    if (user !== undefined && (user.name === spec || String(user.uid) === spec)) return user;
  }
  return undefined;
}

/**
 * Checks, as the replica user, that it can enter `dir` (replicas run there and
 * read their artifacts under it). Returns the problem, or undefined. Runs
 * /bin/sh as that user, so what it checks is what the kernel allows.
 */
export function replicaUserCannotEnter(user: ReplicaUser, dir: string): string | undefined {
  const probe = spawnSync("/bin/sh", ["-c", 'cd "$1"', "sh", dir], { uid: user.uid, gid: user.gid, encoding: "utf8", timeout: 5000 });
  if (probe.error !== undefined) return `could not check as ${user.name}: ${probe.error.message}`;
  if (probe.status === 0) return undefined;
  return `user ${user.name} (uid ${user.uid}) cannot enter ${dir}: make it and its parent directories searchable by that user (e.g. chmod o+x, or a group)`;
}
