// --replica-user: a container-manager running as root runs its model replicas as an unprivileged user, so model
// code cannot read what only root may (the tokens file, TLS keys, other users' files). Runs only as root.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { postJson, repoRoot, TestSystem } from "../system.js";

const asRoot = process.getuid?.() === 0;

describe.skipIf(!asRoot)("replicas run as --replica-user nobody under a root container-manager", () => {
  // The data directory must be searchable by the replica user (mkdtemp makes it 0700): replicas run and read there.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-replica-user-"));
  const rootOnly = path.join(dataDir, "root-only");
  const shared = path.join(dataDir, "shared");
  const system = new TestSystem({ dataDir, args: { "container-manager": ["--replica-user", "nobody"] } });

  beforeAll(async () => {
    // The replica runs from the checkout: as nobody it must be able to enter every directory above it.
    for (let dir = repoRoot; dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const mode = fs.statSync(dir).mode;
      if ((mode & 0o001) === 0) {
        throw new Error(
          `${dir} (mode ${(mode & 0o777).toString(8)}) cannot be entered by other users, so a replica run as nobody cannot read the checkout: clone it where others may enter (chmod o+x)`,
        );
      }
    }
    fs.chmodSync(dataDir, 0o755);
    fs.writeFileSync(rootOnly, "root's secret\n", { mode: 0o600 });
    fs.writeFileSync(shared, "readable by all\n", { mode: 0o644 });
    await system.start();
  }, 120_000);

  afterAll(async () => {
    await system.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it("starts the replica as nobody: it serves from the checkout, reads what all may read and not root's files", async () => {
    // A command runtime that says who it is and what it can read, then serves the TypeScript SDK's sum model.
    const script = [
      'echo "identity uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME"',
      `if cat ${rootOnly} >/dev/null 2>&1; then echo "root-only: read"; else echo "root-only: refused"; fi`,
      `echo "shared: $(cat ${shared})"`,
      'exec "$0" --import tsx sdk/typescript/src/runner.ts',
    ].join("; ");
    const model = {
      name: "unprivileged",
      version: "1",
      inputType: InputType.DOUBLES,
      desiredReplicas: 1,
      runtime: {
        kind: {
          case: "command" as const,
          value: {
            argv: ["/bin/sh", "-c", script, process.execPath],
            env: { CLIPPER_MODEL_MODULE: path.join(repoRoot, "sdk", "typescript", "examples", "sum-model.ts") },
            workingDir: repoRoot,
          },
        },
      },
    };
    await system.deployApp("as-nobody", model);
    const answer = await postJson(`${system.gatewayUrl}/as-nobody/predict`, { input: [1, 2, 3.5] });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ output: 6.5, default: false });

    const { logs } = await system.containerManager().getLogs({ modelName: "unprivileged" });
    const lines = logs.flatMap((l) => l.lines).join("\n");
    expect(lines).toContain("running as user nobody (uid 65534, gid 65534; --replica-user)");
    expect(lines).toContain("identity uid=65534 gid=65534 groups=65534 home=/nonexistent");
    expect(lines).toContain("root-only: refused");
    expect(lines).toContain("shared: readable by all");
  }, 90_000);

  it("refuses to start when the replica user cannot enter the data directory, naming both", async () => {
    const closed = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-replica-user-closed-"));
    const other = new TestSystem({ dataDir: closed, args: { "container-manager": ["--replica-user", "nobody"] } });
    try {
      await other.startService("registry");
      await expect(other.startService("container-manager")).rejects.toThrow(
        new RegExp(`exited with 2:[\\s\\S]*--replica-user nobody: user nobody \\(uid 65534\\) cannot enter ${closed}`),
      );
    } finally {
      await other.stop();
      fs.rmSync(closed, { recursive: true, force: true });
    }
  }, 60_000);
});
