// The artifact server over real HTTP on loopback, and the model pods' fetch program (clipper_runtime.artifact_fetch,
// a real Python process) against it: served and verified, refused on a digest mismatch, unknown and malformed
// digests, tokens, the concurrency bound.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, hashToken, TokenAuthenticator } from "../shared/index.js";
import { type ArtifactServer, startArtifactServer } from "./artifact-server.js";
import { artifactPath } from "./backends/launch.js";

const repoRoot = path.resolve(import.meta.dirname, "..", "..");
const venvPython = path.join(repoRoot, ".venv", "bin", "python");
const python = fs.existsSync(venvPython) ? venvPython : "python3";
const run = promisify(execFile);
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;
const logger = createLogger({ service: "artifact-server-test", level: "silent" });

describe("artifact server", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-artifact-server-"));
  const podDir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-artifact-pod-"));
  const content = Buffer.from("a pickled closure, say ".repeat(5000));
  const digest = sha(content);
  let open: ArtifactServer;
  let guarded: ArtifactServer;
  const token = "clp_test-token-for-the-artifact-server";

  beforeAll(async () => {
    fs.mkdirSync(path.join(dataDir, "artifacts", "sha256"), { recursive: true });
    fs.writeFileSync(artifactPath(dataDir, digest), content);
    open = await startArtifactServer({ dataDir, host: "127.0.0.1", port: 0, logger, maxConcurrentDownloads: 2 });
    guarded = await startArtifactServer({
      dataDir,
      host: "127.0.0.1",
      port: 0,
      logger,
      authenticator: new TokenAuthenticator([{ hash: hashToken(token), role: "read-only", name: "model-pods" }]),
    });
  });
  afterAll(async () => {
    await open?.close();
    await guarded?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(podDir, { recursive: true, force: true });
  });

  const url = (server: ArtifactServer, d: string) => `http://127.0.0.1:${server.port}/artifacts/${d}`;

  it("streams an artifact by digest, with its length", async () => {
    const res = await fetch(url(open, digest));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(content.length));
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);
  });

  it("answers 404 for an unknown digest, 400 for a malformed one, 404 off the route", async () => {
    const unknown = await fetch(url(open, sha("nothing stored")));
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toContain("no artifact with sha256");
    for (const bad of ["abc", digest.toUpperCase(), `${digest}0`, "..%2F..%2Fetc%2Fpasswd"]) {
      const res = await fetch(url(open, bad));
      expect(res.status, bad).toBe(400);
      expect(await errorOf(res)).toContain("is not a sha256 digest");
    }
    expect((await fetch(`http://127.0.0.1:${open.port}/metrics`)).status).toBe(404);
    expect((await fetch(url(open, digest), { method: "DELETE" })).status).toBe(405);
  });

  it("with tokens on, needs a valid bearer token", async () => {
    const none = await fetch(url(guarded, digest));
    expect(none.status).toBe(401);
    expect(await errorOf(none)).toContain("authorization: Bearer");
    const wrong = await fetch(url(guarded, digest), { headers: { authorization: "Bearer clp_not-a-token" } });
    expect(wrong.status).toBe(401);
    expect(await errorOf(wrong)).toBe("the API token is not valid");
    const right = await fetch(url(guarded, digest), { headers: { authorization: `Bearer ${token}` } });
    expect(right.status).toBe(200);
    expect(sha(Buffer.from(await right.arrayBuffer()))).toBe(digest);
  });

  it("serves at most maxConcurrentDownloads at once: the next is told to retry (503)", async () => {
    // Two downloads whose readers do not read: their responses stay in flight.
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    const bigDigest = sha(big);
    fs.writeFileSync(artifactPath(dataDir, bigDigest), big);
    const stalled: http.ClientRequest[] = [];
    const started = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<http.IncomingMessage>((resolve) => {
            const req = http.get(url(open, bigDigest), (res) => {
              res.pause();
              resolve(res);
            });
            stalled.push(req);
          }),
      ),
    );
    expect(started.map((r) => r.statusCode)).toEqual([200, 200]);
    const third = await fetch(url(open, bigDigest));
    expect(third.status).toBe(503);
    expect(third.headers.get("retry-after")).toBe("1");
    for (const req of stalled) req.destroy();
    await expect.poll(async () => (await fetch(url(open, digest))).status, { timeout: 5000 }).toBe(200);
  });

  const fetchProgram = (env: Record<string, string>, command: string[]) =>
    run(python, ["-m", "clipper_runtime.artifact_fetch", "--", ...command], {
      env: { PATH: process.env.PATH ?? "", PYTHONPATH: path.join(repoRoot, "sdk", "python", "src"), ...env },
    }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );

  it("the pods' fetch program downloads, verifies and execs the runtime; a second start reuses the verified file", async () => {
    const dest = path.join(podDir, "artifacts", "sha256", digest);
    const env = { CLIPPER_ARTIFACT_URL: url(guarded, digest), CLIPPER_ARTIFACT_SHA256: digest, CLIPPER_ARTIFACT_PATH: dest, CLIPPER_ARTIFACT_TOKEN: token };
    const first = await fetchProgram(env, ["sha256sum", dest]);
    expect(first.stderr).toContain("sha256 verified (attempt 1)");
    expect(first.code).toBe(0);
    // The exec'd command (the runtime's stand-in) read the verified file.
    expect(first.stdout).toContain(digest);
    const again = await fetchProgram(env, ["true"]);
    expect(again.stderr).toContain("already there, sha256 verified");
    expect(again.code).toBe(0);
  });

  it("the fetch refuses a corrupted artifact with a clear message and exit 1, at once, and leaves nothing behind", async () => {
    const corrupt = Buffer.from("the stored bytes, damaged at rest");
    const claimed = sha("the bytes that were uploaded");
    fs.writeFileSync(artifactPath(dataDir, claimed), corrupt);
    const dest = path.join(podDir, "corrupt", claimed);
    const result = await fetchProgram({ CLIPPER_ARTIFACT_URL: url(open, claimed), CLIPPER_ARTIFACT_SHA256: claimed, CLIPPER_ARTIFACT_PATH: dest }, [
      "echo",
      "the runtime must not start",
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `clipper artifact fetch: sha256 mismatch: expected ${claimed}, the downloaded content's is ${sha(corrupt)}; refusing to load it`,
    );
    expect(result.stdout).not.toContain("the runtime must not start");
    // Damage at rest is not retried (the kubelet's container restarts are the bounded retry).
    expect(result.stderr).not.toContain("retrying");
    expect(fs.readdirSync(path.dirname(dest))).toEqual([]);
  });

  it("the fetch does not retry a 401 or a 404, and says which", async () => {
    const dest = path.join(podDir, "missing", "x");
    const unknown = sha("never uploaded");
    const notFound = await fetchProgram({ CLIPPER_ARTIFACT_URL: url(open, unknown), CLIPPER_ARTIFACT_SHA256: unknown, CLIPPER_ARTIFACT_PATH: dest }, ["true"]);
    expect(notFound.code).toBe(1);
    expect(notFound.stderr).toContain("HTTP 404");
    expect(notFound.stderr).not.toContain("retrying");
    const noToken = await fetchProgram({ CLIPPER_ARTIFACT_URL: url(guarded, digest), CLIPPER_ARTIFACT_SHA256: digest, CLIPPER_ARTIFACT_PATH: dest }, ["true"]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("HTTP 401");
  });
});
