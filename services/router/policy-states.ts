import type { Client } from "@connectrpc/connect";
import type { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { Code, ConnectError } from "../shared/index.js";
import type { Clock } from "./clock.js";

/** A stored policy state: its compare-and-set version (0: none stored) and its JSON bytes. */
export interface VersionedState {
  version: bigint;
  state: Uint8Array;
}

/** Where policy states live: the registry's ManagementService (GetPolicyState / UpdatePolicyState). */
export interface PolicyStateBackend {
  get(application: string, uid: string, timeoutMs: number): Promise<VersionedState>;
  /** Stores `state` if the stored version is still `expectedVersion`; otherwise answers what is stored. */
  swap(application: string, uid: string, expectedVersion: bigint, state: Uint8Array): Promise<{ applied: boolean } & VersionedState>;
}

export function registryPolicyStateBackend(registry: Client<typeof ManagementService>, timeoutMs = 5_000): PolicyStateBackend {
  return {
    async get(application, uid, getTimeoutMs) {
      const r = await registry.getPolicyState({ application, uid }, { timeoutMs: getTimeoutMs });
      return { version: r.version, state: r.state };
    },
    async swap(application, uid, expectedVersion, state) {
      const r = await registry.updatePolicyState({ application, uid, expectedVersion, state }, { timeoutMs });
      return { applied: r.applied, version: r.version, state: r.state };
    },
  };
}

/** A state as the router holds it: parsed JSON (undefined when none is stored). */
export interface CachedState {
  version: bigint;
  value: unknown;
}

export interface PolicyStatesOptions {
  backend: PolicyStateBackend;
  clock: Clock;
  /** How long a fetched state is used before it is fetched again: bounds how stale another router's updates look here. */
  ttlMs?: number;
  /** States held (application and user states together); the least recently used go first. */
  maxEntries?: number;
  /** Compare-and-set attempts of one update before it gives up with ABORTED. */
  maxAttempts?: number;
}

interface Entry extends CachedState {
  fetchedAt: number;
}

/**
 * The router's view of policy states: a small TTL cache in front of the
 * registry, and updates by compare-and-set so concurrent routers lose
 * nothing (a conflict re-applies the update to the stored state and retries).
 * Updates of one key from this router are run one after another, so they do
 * not conflict with each other.
 */
export class PolicyStates {
  private readonly entries = new Map<string, Entry>();
  private readonly fetching = new Map<string, Promise<CachedState>>();
  private readonly pendingUpdates = new Map<string, PendingUpdate[]>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly maxAttempts: number;

  constructor(private readonly options: PolicyStatesOptions) {
    this.ttlMs = options.ttlMs ?? 1_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.maxAttempts = options.maxAttempts ?? 32;
  }

  /**
   * The state, from the cache when fresh, else from the registry within
   * `timeoutMs`. When the registry does not answer, a stale entry is used, or
   * none (the policy starts from its initial state): selection never fails
   * for want of learned state.
   */
  async read(application: string, uid: string, timeoutMs: number): Promise<CachedState> {
    const key = stateKey(application, uid);
    const entry = this.entries.get(key);
    if (entry !== undefined && this.options.clock.now() - entry.fetchedAt < this.ttlMs) return entry;
    let fetch = this.fetching.get(key);
    if (fetch === undefined) {
      fetch = this.fetch(application, uid, Math.max(1, timeoutMs)).finally(() => this.fetching.delete(key));
      this.fetching.set(key, fetch);
    }
    try {
      return await fetch;
    } catch {
      return entry ?? { version: 0n, value: undefined };
    }
  }

  /**
   * Applies `update` to the stored state (undefined when none) and stores the
   * result by compare-and-set, retrying on conflict with the state another
   * writer stored. `update` must be pure: it may run more than once.
   * Updates of one key arriving while one is being stored are folded into
   * the next compare-and-set together, so a busy router needs one round trip
   * per batch of feedback rather than one per feedback.
   */
  update(application: string, uid: string, update: (current: unknown) => unknown): Promise<void> {
    const key = stateKey(application, uid);
    return new Promise<void>((resolve, reject) => {
      const queued = this.pendingUpdates.get(key);
      if (queued !== undefined) {
        queued.push({ update, resolve, reject });
        return;
      }
      this.pendingUpdates.set(key, [{ update, resolve, reject }]);
      void this.drain(application, uid, key);
    });
  }

  /** Stores the queued updates of one key, a batch at a time, until none are left. */
  private async drain(application: string, uid: string, key: string): Promise<void> {
    for (;;) {
      const batch = this.pendingUpdates.get(key) ?? [];
      if (batch.length === 0) {
        this.pendingUpdates.delete(key);
        return;
      }
      // Later arrivals queue behind this batch.
      this.pendingUpdates.set(key, []);
      try {
        await this.swapLoop(application, uid, (state) => batch.reduce((s, u) => u.update(s), state));
        for (const u of batch) u.resolve();
      } catch (err) {
        for (const u of batch) u.reject(err);
      }
    }
  }

  private async swapLoop(application: string, uid: string, update: (current: unknown) => unknown): Promise<void> {
    const key = stateKey(application, uid);
    let current: CachedState = this.entries.get(key) ?? (await this.fetch(application, uid, 5_000));
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const next = update(current.value);
      const r = await this.options.backend.swap(application, uid, current.version, encodeState(next));
      if (r.applied) {
        this.remember(key, { version: r.version, value: next });
        return;
      }
      current = { version: r.version, value: decodeState(r.state) };
      this.remember(key, current);
      // A short random pause, so a writer that keeps losing the race to a busier one gets its turn.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));
    }
    throw new ConnectError(
      `policy state of ${describeKey(application, uid)} kept changing under ${this.maxAttempts} attempts to update it; retry`,
      Code.Aborted,
    );
  }

  private async fetch(application: string, uid: string, timeoutMs: number): Promise<CachedState> {
    const r = await this.options.backend.get(application, uid, timeoutMs);
    const state = { version: r.version, value: decodeState(r.state) };
    this.remember(stateKey(application, uid), state);
    return state;
  }

  private remember(key: string, state: CachedState): void {
    this.entries.delete(key);
    this.entries.set(key, { ...state, fetchedAt: this.options.clock.now() });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }
}

interface PendingUpdate {
  update: (current: unknown) => unknown;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function stateKey(application: string, uid: string): string {
  return `${application}\u0000${uid}`;
}

function describeKey(application: string, uid: string): string {
  return uid === "" ? `application ${application}` : `application ${application} user ${uid}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeState(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Empty or unparseable bytes read as no state: the policy starts afresh rather than failing. */
export function decodeState(bytes: Uint8Array): unknown {
  if (bytes.byteLength === 0) return undefined;
  try {
    return JSON.parse(decoder.decode(bytes)) as unknown;
  } catch {
    return undefined;
  }
}
