import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ApplicationSchema,
  type ConfigChange,
  type ConfigSnapshot,
  ConfigSnapshotSchema,
  CurrentVersionSchema,
  ModelSchema,
  ReplicaSetSchema,
} from "../../gen/clipper/v1/resources_pb.js";

/**
 * Where the registry keeps its configuration. A store persists ConfigChanges
 * atomically, one commit at a time, and loads everything back as one
 * ConfigSnapshot. The revision counts changes: a commit of N changes moves it
 * from R to R+N, so change i of the commit has revision R+i+1.
 */
export interface RegistryStore {
  /** Every record and the revision they were read at, read atomically. */
  load(): Promise<ConfigSnapshot>;
  /**
   * Applies the changes atomically (all or none survive a crash) if the stored
   * revision is still `expectedRevision`, and returns the new revision.
   * Throws StoreConflictError when another writer moved the revision.
   */
  commit(expectedRevision: bigint, changes: readonly ConfigChange[]): Promise<bigint>;
  /**
   * The stored policy state of an application (uid "") or one of its users;
   * empty when none, with version 0, or the highest version its application
   * has evicted (so a key's version never goes back: a router holding a
   * state read before the eviction cannot compare-and-set over a new one).
   * Reading a user's state counts as using it.
   */
  getPolicyState(key: PolicyStateKey): Promise<StoredPolicyState>;
  /**
   * Compare-and-set of one policy state: stores `state` with version
   * expectedVersion + 1 if the stored version is still `expectedVersion`,
   * atomically; otherwise leaves it and answers what is stored. A user's
   * state (uid not "") that makes its application hold more than `bounds`
   * (DEFAULT_POLICY_STATE_BOUNDS when not given) evicts, in the same atomic
   * step, the application's least recently used users (read or written
   * longest ago; never the one being written) until it fits.
   */
  swapPolicyState(key: PolicyStateKey, expectedVersion: bigint, state: Uint8Array, bounds?: PolicyStateBounds): Promise<PolicyStateSwap>;
  /**
   * Empties every policy state of an application (its own and its users'),
   * each by a version step, never back to version 0: a router holding a state
   * read before cannot compare-and-set over the empty one. Returns how many.
   */
  clearPolicyStates(application: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * Policy state is learned data, not configuration: it is written far more
 * often, has its own version per key, and is never part of a snapshot or the
 * revision.
 */
export interface PolicyStateKey {
  application: string;
  uid: string;
}

export interface StoredPolicyState {
  version: bigint;
  state: Uint8Array;
}

export type PolicyStateSwap = ({ applied: true; version: bigint } & PolicyStateUsage) | { applied: false; version: bigint; state: Uint8Array };

/**
 * How much learned state of its users one application may hold: per-user
 * states are keyed by a caller's uid, so without a bound a client sending a
 * fresh uid with each feedback grows the store forever. The application's own
 * state (uid "") is not counted (it is one, bounded by its size limit).
 */
export interface PolicyStateBounds {
  /** User states (keys) of one application, emptied ones included. */
  maxUsers: number;
  /** Bytes of the users' states of one application (the JSON; keys and bookkeeping aside). */
  maxUserBytes: number;
}

export const DEFAULT_POLICY_STATE_BOUNDS: PolicyStateBounds = { maxUsers: 100_000, maxUserBytes: 32 * 1024 * 1024 };

/** What an applied swap left: how many users it evicted, and what the application's users hold now. */
export interface PolicyStateUsage {
  evicted: number;
  users: number;
  userBytes: number;
}

/** One string per policy state key; names are DNS labels, so the NUL cannot be part of an application name. */
export function policyStateField(key: PolicyStateKey): string {
  return `${key.application}\u0000${key.uid}`;
}

/** The start of the fields of every policy state of `application`. */
export function policyStatePrefix(application: string): string {
  return `${application}\u0000`;
}

/** A policy state stored as an 8-byte big-endian version followed by the JSON bytes. */
export function encodePolicyState(version: bigint, state: Uint8Array): Buffer {
  const buf = Buffer.alloc(8 + state.byteLength);
  buf.writeBigUInt64BE(version);
  buf.set(state, 8);
  return buf;
}

export function decodePolicyState(raw: Uint8Array | undefined): StoredPolicyState {
  if (raw === undefined || raw.byteLength < 8) return { version: 0n, state: new Uint8Array() };
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  return { version: buf.readBigUInt64BE(0), state: new Uint8Array(buf.subarray(8)) };
}

/** The stored revision is not the one the caller computed its changes against. */
export class StoreConflictError extends Error {
  override name = "StoreConflictError";
  constructor(
    readonly expected: bigint,
    readonly actual: bigint,
  ) {
    super(`registry store is at revision ${actual}, expected ${expected}: another writer changed it`);
  }
}

/** One write to the key space a store holds: a put of a binary record or a delete. */
export type RecordWrite = { key: string; value: Uint8Array } | { key: string; value: undefined };

/*
 * Record keys. Names are DNS labels and versions never contain '/', so the
 * keys cannot collide.
 */
const APP = "app/";
const MODEL = "model/";
const CURRENT = "current/";
const REPLICAS = "replicas/";

/** The record writes that persist one change. */
export function recordWrite(change: ConfigChange): RecordWrite {
  const c = change.change;
  switch (c.case) {
    case "applicationUpserted":
      return { key: APP + c.value.name, value: toBinary(ApplicationSchema, c.value) };
    case "applicationDeleted":
      return { key: APP + c.value, value: undefined };
    case "modelUpserted":
      return { key: `${MODEL}${c.value.name}/${c.value.version}`, value: toBinary(ModelSchema, c.value) };
    case "modelDeleted":
      return { key: `${MODEL}${c.value.modelName}/${c.value.version}`, value: undefined };
    case "currentVersionSet":
      return { key: CURRENT + c.value.modelName, value: toBinary(CurrentVersionSchema, c.value) };
    case "currentVersionCleared":
      return { key: CURRENT + c.value, value: undefined };
    case "replicasReported": {
      const key = `${REPLICAS}${c.value.modelName}/${c.value.modelVersion}`;
      // An empty replica set is kept as no record at all.
      return c.value.replicas.length === 0 ? { key, value: undefined } : { key, value: toBinary(ReplicaSetSchema, c.value) };
    }
    case undefined:
      throw new Error(`config change at revision ${change.revision} has no content`);
  }
}

/** Builds a snapshot from stored records (in any order); unknown keys are an error, not silently dropped. */
export function snapshotFromRecords(revision: bigint, records: Iterable<[string, Uint8Array]>): ConfigSnapshot {
  const snapshot = create(ConfigSnapshotSchema, { revision });
  for (const [key, value] of records) {
    if (key.startsWith(APP)) snapshot.applications.push(fromBinary(ApplicationSchema, value));
    else if (key.startsWith(MODEL)) snapshot.models.push(fromBinary(ModelSchema, value));
    else if (key.startsWith(CURRENT)) snapshot.currentVersions.push(fromBinary(CurrentVersionSchema, value));
    else if (key.startsWith(REPLICAS)) snapshot.replicaSets.push(fromBinary(ReplicaSetSchema, value));
    else throw new Error(`registry store holds an unknown record "${key}"`);
  }
  return snapshot;
}
