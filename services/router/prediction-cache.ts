export interface PredictionCacheOptions {
  /** Bound on the bytes held by entries (inputs, outputs and bookkeeping). */
  maxBytes: number;
  /** Bound on queries waiting for an identical query's answer; beyond it they are not de-duplicated. */
  maxWaiters: number;
  /** Picks the bucket; equality is always checked on the full input (tests force collisions with a constant). */
  hash: (modelKey: string, input: Uint8Array) => number;
}

/** Told the output when the model call answers, or undefined when it ended without one (the waiter then asks itself). */
export type CacheWaiter = (output: string | undefined) => void;

/** A model call the cache is waiting for; `complete` or `abandon` it exactly once. */
export interface CacheTicket {
  readonly modelKey: string;
  readonly hash: number;
  readonly input: Uint8Array;
  readonly generation: number;
  readonly waiters: CacheWaiter[];
  done: boolean;
}

export type CacheLookup = { kind: "hit"; output: string } | { kind: "joined" } | { kind: "miss"; ticket: CacheTicket };

export interface PredictionCacheStats {
  hits: number;
  misses: number;
  /** Queries answered by an identical query's model call in flight. */
  deduplicated: number;
  evictions: number;
  bytes: number;
  entries: number;
}

interface Entry {
  readonly modelKey: string;
  readonly hash: number;
  readonly input: Uint8Array;
  output: string;
  size: number;
  referenced: boolean;
  slot: number;
}

/** Per-entry bookkeeping counted against maxBytes: the objects, the map and ring slots. */
const ENTRY_OVERHEAD_BYTES = 128;

/**
 * Model outputs keyed by (model, version, input bytes). The hash only picks a
 * bucket: a hit needs the same model version and byte-for-byte the same
 * input, so one input never gets another's answer. Bounded in bytes with
 * CLOCK eviction (a hit sets the entry's reference bit; the hand clears bits
 * and evicts the first entry found clear). Concurrent identical queries are
 * de-duplicated: the first is a miss and calls the model, the others wait for
 * its answer.
 */
export class PredictionCache {
  private readonly entries = new Map<number, Entry[]>();
  private readonly inFlight = new Map<number, CacheTicket[]>();
  private readonly ring: Array<Entry | undefined> = [];
  private readonly freeSlots: number[] = [];
  private readonly generations = new Map<string, number>();
  private hand = 0;
  private waiting = 0;
  private readonly counters: PredictionCacheStats = { hits: 0, misses: 0, deduplicated: 0, evictions: 0, bytes: 0, entries: 0 };

  private readonly options: PredictionCacheOptions;

  constructor(options: Partial<PredictionCacheOptions> = {}) {
    this.options = { maxBytes: 64 * 1024 * 1024, maxWaiters: 100_000, hash: hashKey, ...options };
  }

  /** A hit, a join of an identical call in flight (`waiter` will be told), or a miss whose ticket the caller settles. */
  lookup(modelKey: string, input: Uint8Array, waiter: CacheWaiter): CacheLookup {
    const hash = this.options.hash(modelKey, input);
    const entry = find(this.entries.get(hash), modelKey, input);
    if (entry !== undefined) {
      entry.referenced = true;
      this.counters.hits++;
      return { kind: "hit", output: entry.output };
    }
    const pending = find(this.inFlight.get(hash), modelKey, input);
    if (pending !== undefined && this.waiting < this.options.maxWaiters) {
      pending.waiters.push(waiter);
      this.waiting++;
      this.counters.deduplicated++;
      return { kind: "joined" };
    }
    this.counters.misses++;
    const ticket: CacheTicket = { modelKey, hash, input, generation: this.generations.get(modelKey) ?? 0, waiters: [], done: false };
    if (pending === undefined) pushTo(this.inFlight, hash, ticket);
    return { kind: "miss", ticket };
  }

  /** The model answered the ticket's input: store the output (unless its version was dropped meanwhile) and tell the waiters. */
  complete(ticket: CacheTicket, output: string): void {
    if (!this.finish(ticket)) return;
    if (ticket.generation === (this.generations.get(ticket.modelKey) ?? 0)) this.insert(ticket.modelKey, ticket.hash, ticket.input, output);
    for (const w of ticket.waiters) w(output);
  }

  /** The call ended without a model output: the waiters must ask again themselves. */
  abandon(ticket: CacheTicket): void {
    if (!this.finish(ticket)) return;
    for (const w of ticket.waiters) w(undefined);
  }

  /**
   * Stores a model's output for an input without any lookup before it: the
   * router records the predictions of learning policies here even when the
   * application does not answer from the cache, so feedback can join them.
   */
  record(modelKey: string, input: Uint8Array, output: string): void {
    this.insert(modelKey, this.options.hash(modelKey, input), input, output);
  }

  /** The stored output for the input, if any, without counting a hit or marking the entry used (the feedback join). */
  peek(modelKey: string, input: Uint8Array): string | undefined {
    return find(this.entries.get(this.options.hash(modelKey, input)), modelKey, input)?.output;
  }

  /** Drops every entry of a model version (its model's current version changed); calls in flight for it are not stored. */
  dropModelVersion(modelKey: string): void {
    this.generations.set(modelKey, (this.generations.get(modelKey) ?? 0) + 1);
    for (const e of this.ring) if (e !== undefined && e.modelKey === modelKey) this.remove(e);
  }

  stats(): PredictionCacheStats {
    return { ...this.counters };
  }

  private finish(ticket: CacheTicket): boolean {
    if (ticket.done) return false;
    ticket.done = true;
    this.waiting -= ticket.waiters.length;
    const bucket = this.inFlight.get(ticket.hash);
    if (bucket !== undefined) {
      const i = bucket.indexOf(ticket);
      if (i >= 0) bucket.splice(i, 1);
      if (bucket.length === 0) this.inFlight.delete(ticket.hash);
    }
    return true;
  }

  private insert(modelKey: string, hash: number, input: Uint8Array, output: string): void {
    const size = input.length + 2 * output.length + 2 * modelKey.length + ENTRY_OVERHEAD_BYTES;
    // One entry may not take more than a quarter of the cache, or a few large inputs would flush it.
    if (size > this.options.maxBytes / 4) return;
    const existing = find(this.entries.get(hash), modelKey, input);
    if (existing !== undefined) this.remove(existing);
    while (this.counters.bytes + size > this.options.maxBytes) this.evictOne();
    // Copied so a small entry does not keep a large request's buffer alive.
    const entry: Entry = { modelKey, hash, input: input.slice(), output, size, referenced: false, slot: 0 };
    const free = this.freeSlots.pop();
    if (free === undefined) {
      entry.slot = this.ring.length;
      this.ring.push(entry);
    } else {
      entry.slot = free;
      this.ring[free] = entry;
    }
    pushTo(this.entries, entry.hash, entry);
    this.counters.bytes += size;
    this.counters.entries++;
  }

  private evictOne(): void {
    // Terminates: there are entries (bytes > 0), and one sweep clears every reference bit.
    for (;;) {
      if (this.hand >= this.ring.length) this.hand = 0;
      const e = this.ring[this.hand++];
      if (e === undefined) continue;
      if (e.referenced) {
        e.referenced = false;
        continue;
      }
      this.remove(e);
      this.counters.evictions++;
      return;
    }
  }

  private remove(e: Entry): void {
    if (this.ring[e.slot] !== e) return;
    this.ring[e.slot] = undefined;
    this.freeSlots.push(e.slot);
    const bucket = this.entries.get(e.hash);
    if (bucket !== undefined) {
      const i = bucket.indexOf(e);
      if (i >= 0) bucket.splice(i, 1);
      if (bucket.length === 0) this.entries.delete(e.hash);
    }
    this.counters.bytes -= e.size;
    this.counters.entries--;
  }
}

function find<E extends { modelKey: string; input: Uint8Array }>(bucket: E[] | undefined, modelKey: string, input: Uint8Array): E | undefined {
  if (bucket === undefined) return undefined;
  for (const e of bucket) if (e.modelKey === modelKey && bytesEqual(e.input, input)) return e;
  return undefined;
}

function pushTo<V>(map: Map<number, V[]>, key: number, value: V): void {
  const bucket = map.get(key);
  if (bucket === undefined) map.set(key, [value]);
  else bucket.push(value);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** FNV-1a over the model key and the input: for bucketing only, never for equality. */
export function hashKey(modelKey: string, input: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < modelKey.length; i++) h = Math.imul(h ^ modelKey.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0xff, 0x01000193);
  for (let i = 0; i < input.length; i++) h = Math.imul(h ^ (input[i] as number), 0x01000193);
  return h >>> 0;
}
