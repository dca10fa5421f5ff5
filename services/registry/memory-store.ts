import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";
import {
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
    return this.policyStates.get(policyStateField(key)) ?? { version: 0n, state: new Uint8Array() };
  }

  async swapPolicyState(key: PolicyStateKey, expectedVersion: bigint, state: Uint8Array): Promise<PolicyStateSwap> {
    // Read and write in one synchronous step, as a store transaction would.
    const current = this.policyStates.get(policyStateField(key)) ?? { version: 0n, state: new Uint8Array() };
    if (current.version !== expectedVersion) return { applied: false, ...current };
    const version = expectedVersion + 1n;
    this.policyStates.set(policyStateField(key), { version, state: new Uint8Array(state) });
    return { applied: true, version };
  }

  async clearPolicyStates(application: string): Promise<number> {
    const prefix = policyStatePrefix(application);
    let cleared = 0;
    for (const [field, stored] of this.policyStates) {
      if (!field.startsWith(prefix) || stored.state.byteLength === 0) continue;
      this.policyStates.set(field, { version: stored.version + 1n, state: new Uint8Array() });
      cleared++;
    }
    return cleared;
  }

  async close(): Promise<void> {}
}
