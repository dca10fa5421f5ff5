import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { UploadArtifactRequest } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { invalidArgument, resourceExhausted } from "../shared/index.js";
import { artifactPath } from "./backends/launch.js";

const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface StoredArtifact {
  digest: string;
  sizeBytes: bigint;
}

/**
 * Content-addressed artifacts under `<data-dir>/artifacts/sha256/<hex>`.
 * An upload is written to a temporary file, checked against the size and
 * digest announced in its header, and renamed into place atomically, so a
 * reader never sees a partial artifact.
 */
export class ArtifactStore {
  private readonly tmpDir: string;
  private active = 0;

  constructor(
    private readonly dataDir: string,
    private readonly maxBytes: number,
    private readonly maxConcurrentUploads = 4,
  ) {
    this.tmpDir = path.join(dataDir, "artifacts", "tmp");
    fs.mkdirSync(path.join(dataDir, "artifacts", "sha256"), { recursive: true });
    fs.mkdirSync(this.tmpDir, { recursive: true });
  }

  has(digest: string): boolean {
    return SHA256_HEX.test(digest) && fs.existsSync(artifactPath(this.dataDir, digest));
  }

  async put(parts: AsyncIterable<UploadArtifactRequest>): Promise<StoredArtifact> {
    if (this.active >= this.maxConcurrentUploads) throw resourceExhausted(`too many uploads in progress (limit ${this.maxConcurrentUploads}); retry later`);
    this.active++;
    const tmp = path.join(this.tmpDir, `upload-${randomBytes(8).toString("hex")}`);
    let file: fs.promises.FileHandle | undefined;
    try {
      const iterator = parts[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done || first.value.part.case !== "header")
        throw invalidArgument("the first UploadArtifact message must be a header with size_bytes and sha256");
      const { sizeBytes, sha256 } = first.value.part.value;
      const expected = sha256.toLowerCase();
      if (!SHA256_HEX.test(expected)) throw invalidArgument(`header.sha256 must be 64 hex characters, got "${sha256.slice(0, 80)}"`);
      if (sizeBytes > BigInt(this.maxBytes)) throw invalidArgument(`header.size_bytes is ${sizeBytes}, more than the limit of ${this.maxBytes} bytes`);
      const hash = createHash("sha256");
      let received = 0n;
      file = await fs.promises.open(tmp, "wx");
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        const part = next.value.part;
        if (part.case !== "chunk") throw invalidArgument("after the header, every UploadArtifact message must be a chunk");
        received += BigInt(part.value.length);
        if (received > sizeBytes) throw invalidArgument(`received more than the ${sizeBytes} bytes announced in header.size_bytes`);
        hash.update(part.value);
        await file.write(part.value);
      }
      if (received !== sizeBytes) throw invalidArgument(`received ${received} bytes but header.size_bytes is ${sizeBytes}`);
      const actual = hash.digest("hex");
      if (actual !== expected) throw invalidArgument(`sha256 mismatch: header.sha256 is ${expected} but the content's digest is ${actual}`);
      await file.sync();
      await file.close();
      file = undefined;
      await fs.promises.rename(tmp, artifactPath(this.dataDir, actual));
      return { digest: actual, sizeBytes: received };
    } finally {
      this.active--;
      await file?.close().catch(() => undefined);
      await fs.promises.rm(tmp, { force: true });
    }
  }
}
