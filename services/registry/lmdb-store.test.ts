import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { LmdbStore } from "./lmdb-store.js";
import { describeStoreContract } from "./testing/store-contract.js";

const root = mkdtempSync(join(tmpdir(), "clipper-lmdb-"));
let dir = join(root, "0");
let next = 1;
afterAll(() => rmSync(root, { recursive: true, force: true }));

describeStoreContract("lmdb", {
  open: async () => LmdbStore.open(dir),
  reset: async () => {
    dir = join(root, String(next++));
  },
});
