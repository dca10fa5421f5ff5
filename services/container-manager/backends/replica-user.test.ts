import { describe, expect, it } from "vitest";
import { parsePasswdLine, resolveReplicaUser } from "./replica-user.js";

describe("--replica-user", () => {
  it("reads a passwd line, and refuses a malformed one", () => {
    expect(parsePasswdLine("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")).toEqual({
      name: "nobody",
      uid: 65534,
      gid: 65534,
      home: "/nonexistent",
    });
    expect(parsePasswdLine("svc:x:998:997::::")).toEqual({ name: "svc", uid: 998, gid: 997, home: "/" });
    expect(parsePasswdLine("broken:x:abc:1::/:")).toBeUndefined();
    expect(parsePasswdLine("")).toBeUndefined();
  });

  it("refuses root, an unknown user, and a switch this process cannot make", () => {
    expect(() => resolveReplicaUser("root", 0)).toThrow("--replica-user root is root: name an unprivileged user");
    expect(() => resolveReplicaUser("no-such-user-here", 0)).toThrow("--replica-user no-such-user-here: no such user");
    expect(() => resolveReplicaUser("nobody", 1000)).toThrow("--replica-user nobody needs the container-manager to run as root (it runs as uid 1000)");
    expect(resolveReplicaUser("nobody", 0)).toMatchObject({ name: "nobody", uid: 65534 });
    expect(resolveReplicaUser("65534", 0)).toMatchObject({ name: "nobody" });
  });
});
