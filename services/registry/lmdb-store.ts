import { mkdirSync } from "node:fs";
import { open, type RootDatabase } from "lmdb";
import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";
import {
  DEFAULT_POLICY_STATE_BOUNDS,
  decodePolicyState,
  encodePolicyState,
  type PolicyStateBounds,
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
/** Every policy key starts so (states and the bookkeeping below); no record key does (they all contain '/'). */
const POLICY_KEYS = "policy";
/** `<field>` → when a user's state was last used: its 8-byte sequence number. */
const USE_PREFIX = "policy\u0001";
/** `<application>\0<sequence, 16 hex digits>` → uid: an application's users, least recently used first. */
const LRU_PREFIX = "policy\u0002";
/** `<application>` → its users' bookkeeping (PolicyMeta as JSON). */
const META_PREFIX = "policy\u0003";

/** One application's users: how many, their states' bytes, the next use sequence, the highest version evicted. */
interface PolicyMeta {
  users: number;
  bytes: number;
  seq: number;
  floor: bigint;
}

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
        if (key !== REVISION_KEY && !key.startsWith(POLICY_KEYS)) records.push([key, value]);
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
    const raw = this.db.get(POLICY_PREFIX + policyStateField(key));
    if (raw === undefined) return { version: this.readMeta(key.application)?.floor ?? 0n, state: new Uint8Array() };
    if (key.uid !== "") {
      // Reading a user's state uses it; recorded in a write of its own (lmdb batches them), not awaited by the reader.
      this.db
        .transaction(() => {
          if (this.db.get(POLICY_PREFIX + policyStateField(key)) === undefined) return;
          const meta = this.metaFor(key.application);
          this.touch(key, meta);
          this.writeMeta(key.application, meta);
        })
        .catch(() => undefined);
    }
    return decodePolicyState(raw);
  }

  async swapPolicyState(
    key: PolicyStateKey,
    expectedVersion: bigint,
    state: Uint8Array,
    bounds: PolicyStateBounds = DEFAULT_POLICY_STATE_BOUNDS,
  ): Promise<PolicyStateSwap> {
    const recordKey = POLICY_PREFIX + policyStateField(key);
    // One write transaction: the version check, the write and the evictions cannot interleave with another writer's.
    return this.db.transaction((): PolicyStateSwap => {
      const meta = this.metaFor(key.application);
      const raw = this.db.get(recordKey);
      const current = raw === undefined ? { version: meta.floor, state: new Uint8Array() } : decodePolicyState(raw);
      if (current.version !== expectedVersion) return { applied: false, ...current };
      const version = expectedVersion + 1n;
      this.db.putSync(recordKey, encodePolicyState(version, state));
      let evicted = 0;
      if (key.uid !== "") {
        if (raw === undefined) meta.users++;
        meta.bytes += state.byteLength - current.state.byteLength;
        this.touch(key, meta);
        evicted = this.evict(key, meta, bounds);
      }
      this.writeMeta(key.application, meta);
      return { applied: true, version, evicted, users: meta.users, userBytes: meta.bytes };
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
      const meta = this.readMeta(application);
      if (meta !== undefined) this.writeMeta(application, { ...meta, bytes: 0 });
      return cleared;
    });
  }

  /** Marks a user's state as the application's most recently used. Inside a write transaction. */
  private touch(key: PolicyStateKey, meta: PolicyMeta): void {
    const field = policyStateField(key);
    const previous = this.db.get(USE_PREFIX + field);
    if (previous !== undefined) this.db.removeSync(lruKey(key.application, Buffer.from(previous).readBigUInt64BE(0)));
    const seq = BigInt(meta.seq++);
    const encoded = Buffer.alloc(8);
    encoded.writeBigUInt64BE(seq);
    this.db.putSync(USE_PREFIX + field, encoded);
    this.db.putSync(lruKey(key.application, seq), Buffer.from(key.uid, "utf8"));
  }

  /** Removes the application's least recently used users (never `keep`) until it is within bounds; returns how many. */
  private evict(keep: PolicyStateKey, meta: PolicyMeta, bounds: PolicyStateBounds): number {
    const start = `${LRU_PREFIX}${keep.application}\u0000`;
    let evicted = 0;
    while (meta.users > bounds.maxUsers || meta.bytes > bounds.maxUserBytes) {
      const [oldest] = [...this.db.getRange({ start, limit: 1 })];
      if (oldest === undefined || typeof oldest.key !== "string" || !oldest.key.startsWith(start)) break;
      const uid = Buffer.from(oldest.value).toString("utf8");
      if (uid === keep.uid) break;
      const field = policyStateField({ application: keep.application, uid });
      const stored = this.db.get(POLICY_PREFIX + field);
      if (stored !== undefined) {
        const { version, state } = decodePolicyState(stored);
        if (version > meta.floor) meta.floor = version;
        meta.bytes -= state.byteLength;
        this.db.removeSync(POLICY_PREFIX + field);
      }
      this.db.removeSync(USE_PREFIX + field);
      this.db.removeSync(oldest.key);
      meta.users--;
      evicted++;
    }
    return evicted;
  }

  private readMeta(application: string): PolicyMeta | undefined {
    const raw = this.db.get(META_PREFIX + application);
    if (raw === undefined) return undefined;
    const m = JSON.parse(Buffer.from(raw).toString("utf8")) as { users: number; bytes: number; seq: number; floor: string };
    return { users: m.users, bytes: m.bytes, seq: m.seq, floor: BigInt(m.floor) };
  }

  private writeMeta(application: string, meta: PolicyMeta): void {
    const json = JSON.stringify({ users: meta.users, bytes: meta.bytes, seq: meta.seq, floor: meta.floor.toString() });
    this.db.putSync(META_PREFIX + application, Buffer.from(json, "utf8"));
  }

  /**
   * The application's bookkeeping; a store written before there was any
   * (its users unbounded) gets it now, its users in key order. Inside a write transaction.
   */
  private metaFor(application: string): PolicyMeta {
    const existing = this.readMeta(application);
    if (existing !== undefined) return existing;
    const meta: PolicyMeta = { users: 0, bytes: 0, seq: 0, floor: 0n };
    const start = POLICY_PREFIX + policyStatePrefix(application);
    for (const { key, value } of this.db.getRange({ start })) {
      if (typeof key !== "string" || !key.startsWith(start)) break;
      const uid = key.slice(start.length);
      if (uid === "") continue;
      meta.users++;
      meta.bytes += decodePolicyState(value).state.byteLength;
      this.touch({ application, uid }, meta);
    }
    return meta;
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private readRevision(): bigint {
    const raw = this.db.get(REVISION_KEY);
    return raw === undefined ? 0n : Buffer.from(raw).readBigUInt64BE(0);
  }
}

function lruKey(application: string, seq: bigint): string {
  return `${LRU_PREFIX}${application}\u0000${seq.toString(16).padStart(16, "0")}`;
}

function encodeRevision(revision: bigint): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(revision);
  return buf;
}
