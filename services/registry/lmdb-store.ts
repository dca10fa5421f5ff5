import { mkdirSync } from "node:fs";
import { open, type RootDatabase } from "lmdb";
import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";
import {
  decodePolicyState,
  encodePolicyState,
  type PolicyStateKey,
  type PolicyStateSwap,
  policyStateField,
  policyStatePrefix,
  type RegistryStore,
  recordWrite,
  StoreConflictError,
  type StoredPolicyState,
  snapshotFromRecords,
} from "./store.js";

/** Kept under a key no record key can have (record keys all contain '/'). */
const REVISION_KEY = "revision";
/** Policy states live beside the records under this prefix, outside snapshots and the revision. */
const POLICY_PREFIX = "policy\u0000";

/**
 * The embedded default store: one lmdb environment in `path`
 * (`<data-dir>/registry`). Every commit is one lmdb write transaction holding
 * the records and the revision, so a crash leaves the old or the new state,
 * never a mix; values are protobuf binary.
 */
export class LmdbStore implements RegistryStore {
  private constructor(private readonly db: RootDatabase<Uint8Array, string>) {}

  static open(path: string): LmdbStore {
    mkdirSync(path, { recursive: true });
    return new LmdbStore(open<Uint8Array, string>({ path, encoding: "binary" }));
  }

  async load(): Promise<ConfigSnapshot> {
    // One read transaction so the revision and the records agree.
    return this.db.transactionSync(() => {
      const records: Array<[string, Uint8Array]> = [];
      for (const { key, value } of this.db.getRange()) {
        if (key !== REVISION_KEY && !key.startsWith(POLICY_PREFIX)) records.push([key, value]);
      }
      return snapshotFromRecords(this.readRevision(), records);
    });
  }

  async commit(expectedRevision: bigint, changes: readonly ConfigChange[]): Promise<bigint> {
    const writes = changes.map(recordWrite);
    return this.db.transaction(() => {
      const actual = this.readRevision();
      if (actual !== expectedRevision) throw new StoreConflictError(expectedRevision, actual);
      for (const w of writes) {
        if (w.value === undefined) this.db.removeSync(w.key);
        else this.db.putSync(w.key, w.value);
      }
      const next = actual + BigInt(changes.length);
      this.db.putSync(REVISION_KEY, encodeRevision(next));
      return next;
    });
  }

  async getPolicyState(key: PolicyStateKey): Promise<StoredPolicyState> {
    return decodePolicyState(this.db.get(POLICY_PREFIX + policyStateField(key)));
  }

  async swapPolicyState(key: PolicyStateKey, expectedVersion: bigint, state: Uint8Array): Promise<PolicyStateSwap> {
    const recordKey = POLICY_PREFIX + policyStateField(key);
    // One write transaction: the version check and the write cannot interleave with another writer's.
    return this.db.transaction((): PolicyStateSwap => {
      const current = decodePolicyState(this.db.get(recordKey));
      if (current.version !== expectedVersion) return { applied: false, ...current };
      const version = expectedVersion + 1n;
      this.db.putSync(recordKey, encodePolicyState(version, state));
      return { applied: true, version };
    });
  }

  async clearPolicyStates(application: string): Promise<number> {
    const start = POLICY_PREFIX + policyStatePrefix(application);
    return this.db.transaction(() => {
      let cleared = 0;
      for (const { key, value } of this.db.getRange({ start })) {
        if (typeof key !== "string" || !key.startsWith(start)) break;
        const stored = decodePolicyState(value);
        if (stored.state.byteLength === 0) continue;
        this.db.putSync(key, encodePolicyState(stored.version + 1n, new Uint8Array()));
        cleared++;
      }
      return cleared;
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private readRevision(): bigint {
    const raw = this.db.get(REVISION_KEY);
    return raw === undefined ? 0n : Buffer.from(raw).readBigUInt64BE(0);
  }
}

function encodeRevision(revision: bigint): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(revision);
  return buf;
}
