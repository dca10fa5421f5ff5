import { StoreConflictError, recordWrite, snapshotFromRecords, type RegistryStore } from "./store.js";
import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";

/** A store that forgets everything on exit: for unit tests of the registry's rules. */
export class MemoryStore implements RegistryStore {
  private readonly records = new Map<string, Uint8Array>();
  private revision = 0n;

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

  async close(): Promise<void> {}
}
