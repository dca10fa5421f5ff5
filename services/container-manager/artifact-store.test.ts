import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, it } from "vitest";
import { type UploadArtifactRequest, UploadArtifactRequestSchema } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ArtifactStore } from "./artifact-store.js";

const header = (sizeBytes: number, sha256: string) =>
  create(UploadArtifactRequestSchema, { part: { case: "header", value: { sizeBytes: BigInt(sizeBytes), sha256 } } });
const chunk = (data: string) => create(UploadArtifactRequestSchema, { part: { case: "chunk", value: Buffer.from(data) } });
async function* stream(...parts: UploadArtifactRequest[]) {
  yield* parts;
}
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("ArtifactStore", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-artifacts-"));
  const store = new ArtifactStore(dir, 100);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tmpFiles = () => fs.readdirSync(path.join(dir, "artifacts", "tmp"));

  it("stores an artifact under its digest", async () => {
    const stored = await store.put(stream(header(11, sha("hello world")), chunk("hello "), chunk("world")));
    expect(stored).toEqual({ digest: sha("hello world"), sizeBytes: 11n });
    expect(fs.readFileSync(path.join(dir, "artifacts", "sha256", sha("hello world")), "utf8")).toBe("hello world");
    expect(store.has(sha("hello world"))).toBe(true);
  });

  it("rejects a wrong digest, a wrong size, a missing header or an oversized artifact, leaving nothing behind", async () => {
    await expect(store.put(stream(header(3, sha("abd")), chunk("abc")))).rejects.toThrow(
      /sha256 mismatch: header.sha256 is [0-9a-f]{64} but the content's digest is/,
    );
    await expect(store.put(stream(header(4, sha("abc")), chunk("abc")))).rejects.toThrow("received 3 bytes but header.size_bytes is 4");
    await expect(store.put(stream(header(2, sha("abc")), chunk("abc")))).rejects.toThrow("received more than the 2 bytes");
    await expect(store.put(stream(chunk("abc")))).rejects.toThrow("the first UploadArtifact message must be a header");
    await expect(store.put(stream(header(101, sha("x"))))).rejects.toThrow("more than the limit of 100 bytes");
    await expect(store.put(stream(header(1, "not-hex")))).rejects.toThrow("header.sha256 must be 64 hex characters");
    expect(store.has(sha("abc"))).toBe(false);
    expect(tmpFiles()).toEqual([]);
  });
});
