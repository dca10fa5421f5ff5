import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";
import {
  DEFAULT_POLICY_STATE_BOUNDS,
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

/** A store that forgets everything on exit: for unit tests of the registry's rules. */
export class MemoryStore implements RegistryStore {
  private readonly records = new Map<string, Uint8Array>();
  private revision = 0n;
  private readonly policyStates = new Map<string, StoredPolicyState>();
  private readonly policyUsers = new Map<string, PolicyUsers>();

  async load(): Promise<ConfigSnapshot> {
    return snapshotFromRecords(this.revision, this.records);
  }

  async commit(expectedRevision: bigint, changes: readonly ConfigChange[]): Promise<bigint> {
    if (expectedRevision !== this.revision) throw new StoreConflictError(expectedRevision, this.revision);
    const writes = changes.map(recordWrite);
    for (const w of writes) {
      if (w.value === undefined) this.records.delete(w.key);
      else this.records.set(w.key, w.value);
    }
    this.revision += BigInt(changes.length);
    return this.revision;
  }

  async getPolicyState(key: PolicyStateKey): Promise<StoredPolicyState> {
    const stored = this.policyStates.get(policyStateField(key));
    const users = this.usersOf(key.application);
    if (stored !== undefined && key.uid !== "") touch(users.lru, key.uid);
    return stored ?? { version: users.floor, state: new Uint8Array() };
  }

  async swapPolicyState(
    key: PolicyStateKey,
    expectedVersion: bigint,
    state: Uint8Array,
    bounds: PolicyStateBounds = DEFAULT_POLICY_STATE_BOUNDS,
  ): Promise<PolicyStateSwap> {
    // Read and write in one synchronous step, as a store transaction would.
    const field = policyStateField(key);
    const users = this.usersOf(key.application);
    const stored = this.policyStates.get(field);
    const current = stored ?? { version: users.floor, state: new Uint8Array() };
    if (current.version !== expectedVersion) return { applied: false, ...current };
    const version = expectedVersion + 1n;
    this.policyStates.set(field, { version, state: new Uint8Array(state) });
    let evicted = 0;
    if (key.uid !== "") {
      users.bytes += state.byteLength - (stored?.state.byteLength ?? 0);
      touch(users.lru, key.uid);
      while (users.lru.size > bounds.maxUsers || users.bytes > bounds.maxUserBytes) {
        const oldest = users.lru.keys().next().value;
        if (oldest === undefined || oldest === key.uid) break;
        const oldField = policyStateField({ application: key.application, uid: oldest });
        const old = this.policyStates.get(oldField);
        if (old !== undefined) {
          if (old.version > users.floor) users.floor = old.version;
          users.bytes -= old.state.byteLength;
          this.policyStates.delete(oldField);
        }
        users.lru.delete(oldest);
        evicted++;
      }
    }
    return { applied: true, version, evicted, users: users.lru.size, userBytes: users.bytes };
  }

  async clearPolicyStates(application: string): Promise<number> {
    const prefix = policyStatePrefix(application);
    let cleared = 0;
    for (const [field, stored] of this.policyStates) {
      if (!field.startsWith(prefix) || stored.state.byteLength === 0) continue;
      this.policyStates.set(field, { version: stored.version + 1n, state: new Uint8Array() });
      cleared++;
    }
    this.usersOf(application).bytes = 0;
    return cleared;
  }

  private usersOf(application: string): PolicyUsers {
    let users = this.policyUsers.get(application);
    if (users === undefined) {
      users = { lru: new Set(), bytes: 0, floor: 0n };
      this.policyUsers.set(application, users);
    }
    return users;
  }

  async close(): Promise<void> {}
}

/** One application's users: uids least recently used first (a Set keeps insertion order), their states' bytes, the eviction floor. */
interface PolicyUsers {
  lru: Set<string>;
  bytes: number;
  floor: bigint;
}

function touch(lru: Set<string>, uid: string): void {
  lru.delete(uid);
  lru.add(uid);
}
