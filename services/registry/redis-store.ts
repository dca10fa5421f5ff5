import { Redis } from "ioredis";
import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";
import type { Logger } from "../shared/index.js";
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

/**
 * Checks the revision, applies the writes and bumps the revision in one Lua
 * script, which Redis runs atomically and logs to the AOF as one transaction.
 * KEYS: revision, records hash. ARGV: expected revision, change count, then
 * ("put", field, value) or ("del", field) groups. The check comes before any
 * write, so a conflict leaves everything untouched.
 */
const COMMIT_SCRIPT = `
local rev = redis.call('GET', KEYS[1]) or '0'
if rev ~= ARGV[1] then return redis.error_reply('CONFLICT ' .. rev) end
local i = 3
while i <= #ARGV do
  if ARGV[i] == 'put' then
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
    i = i + 2
  end
end
return tostring(redis.call('INCRBY', KEYS[1], ARGV[2]))
`;

/**
 * Lua shared by the policy scripts. An application's policy keys: KEYS[1] its
 * states (hash field -> 8-byte big-endian version then the state), KEYS[2]
 * its users by last use (sorted set, score a sequence number), KEYS[3] its
 * bookkeeping (hash: users, bytes, seq, floor = the highest version evicted).
 * ARGV[1] is the application's own field (`<app>\0`), never counted or evicted.
 * Lua's numbers are doubles, exact below 2^53, far above any version or count.
 */
const POLICY_LUA = `
local function version(v)
  local n = 0
  for i = 1, 8 do n = n * 256 + string.byte(v, i) end
  return n
end
local function bytes8(n)
  local b = {}
  for i = 8, 1, -1 do
    b[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(b)
end
-- The bookkeeping; a store written before there was any (its users unbounded) gets it now, users in key order.
local function meta()
  if redis.call('HEXISTS', KEYS[3], 'seq') == 0 then
    local users, total, seq = 0, 0, 0
    for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
      if f ~= ARGV[1] then
        users = users + 1
        seq = seq + 1
        total = total + redis.call('HSTRLEN', KEYS[1], f) - 8
        redis.call('ZADD', KEYS[2], seq, f)
      end
    end
    redis.call('HSET', KEYS[3], 'users', users, 'bytes', total, 'seq', seq, 'floor', 0)
  end
  local m = redis.call('HMGET', KEYS[3], 'users', 'bytes', 'seq', 'floor')
  return { users = tonumber(m[1]), bytes = tonumber(m[2]), seq = tonumber(m[3]), floor = tonumber(m[4]) }
end
local function touch(m, field)
  m.seq = m.seq + 1
  redis.call('ZADD', KEYS[2], m.seq, field)
end
local function save(m)
  redis.call('HSET', KEYS[3], 'users', m.users, 'bytes', m.bytes, 'seq', m.seq, 'floor', m.floor)
end
`;

/**
 * Reads one policy state (ARGV[2] its field) and, for a user's, marks it used.
 * Answers the value, or for none the application's floor as an 8-byte version.
 */
const GET_POLICY_SCRIPT = `${POLICY_LUA}
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then
  if ARGV[2] ~= ARGV[1] then
    local m = meta()
    touch(m, ARGV[2])
    save(m)
  end
  return cur
end
local floor = tonumber(redis.call('HGET', KEYS[3], 'floor') or '0')
return bytes8(floor)
`;

/**
 * Compare-and-set of one policy state. ARGV: [1] the application's field, [2]
 * the field, [3] the expected version (decimal), [4] the new value, [5] most
 * users, [6] most bytes of users' states. A missing value is at the floor.
 * Answers {1, evicted, users, bytes} when stored, else {0, current value}.
 * A user's state is marked used, then the least recently used other users
 * are removed (the floor rising to their versions) until within the bounds.
 */
const SWAP_POLICY_SCRIPT = `${POLICY_LUA}
local m = meta()
local cur = redis.call('HGET', KEYS[1], ARGV[2])
local ver = m.floor
if cur then ver = version(cur) end
if ver ~= tonumber(ARGV[3]) then return {0, cur or bytes8(m.floor)} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
local evicted = 0
if ARGV[2] ~= ARGV[1] then
  if cur then m.bytes = m.bytes - (#cur - 8) else m.users = m.users + 1 end
  m.bytes = m.bytes + (#ARGV[4] - 8)
  touch(m, ARGV[2])
  local maxUsers, maxBytes = tonumber(ARGV[5]), tonumber(ARGV[6])
  while m.users > maxUsers or m.bytes > maxBytes do
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not oldest or oldest == ARGV[2] then break end
    local v = redis.call('HGET', KEYS[1], oldest)
    if v then
      local vv = version(v)
      if vv > m.floor then m.floor = vv end
      m.bytes = m.bytes - (#v - 8)
      redis.call('HDEL', KEYS[1], oldest)
    end
    redis.call('ZREM', KEYS[2], oldest)
    m.users = m.users - 1
    evicted = evicted + 1
  end
end
save(m)
return {1, evicted, m.users, m.bytes}
`;

/**
 * Empties every policy state in the hash KEYS[1] (one application's), each
 * stored again as its version + 1 and no state, and counts no bytes for its
 * users in its bookkeeping KEYS[2]. Versions are 8-byte
 * big-endian; Lua's numbers are doubles, exact below 2^53, far above any
 * version. Answers how many were emptied.
 */
const CLEAR_POLICIES_SCRIPT = `
local cleared = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local cur = redis.call('HGET', KEYS[1], field)
  if #cur > 8 then
    local v = 0
    for i = 1, 8 do v = v * 256 + string.byte(cur, i) end
    v = v + 1
    local bytes = {}
    for i = 8, 1, -1 do
      bytes[i] = string.char(v % 256)
      v = math.floor(v / 256)
    end
    redis.call('HSET', KEYS[1], field, table.concat(bytes))
    cleared = cleared + 1
  end
end
if redis.call('HEXISTS', KEYS[2], 'bytes') == 1 then redis.call('HSET', KEYS[2], 'bytes', 0) end
return cleared
`;

export interface RedisStoreOptions {
  /** redis://host:port[/db] */
  url: string;
  /** Prefix of the store's keys, e.g. "clipper:". */
  prefix: string;
  /** Gets connection errors (ioredis reconnects by itself); without it they are dropped. */
  logger?: Logger;
}

/**
 * Configuration in Redis: records in one hash `<prefix>config` (protobuf
 * binary values), the revision in `<prefix>revision`. One registry process
 * writes it; the revision check turns a second writer into a StoreConflictError
 * instead of silent divergence.
 */
export class RedisStore implements RegistryStore {
  private readonly revisionKey: string;
  private readonly recordsKey: string;
  private readonly policyKeyPrefix: string;
  private readonly policyLruPrefix: string;
  private readonly policyMetaPrefix: string;

  private constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.revisionKey = `${prefix}revision`;
    this.recordsKey = `${prefix}config`;
    this.policyKeyPrefix = `${prefix}policy:`;
    this.policyLruPrefix = `${prefix}policy-lru:`;
    this.policyMetaPrefix = `${prefix}policy-meta:`;
  }

  /** Connects and checks that Redis answers; fails instead of retrying forever. */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const redis = new Redis(options.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 2,
      commandTimeout: 5_000,
      connectTimeout: 5_000,
    });
    redis.on("error", (err: Error) => options.logger?.warn({ err: err.message, url: options.url }, "redis connection error"));
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      throw new Error(`cannot reach redis at ${options.url}: ${(err as Error).message}`);
    }
    return new RedisStore(redis, options.prefix);
  }

  async load(): Promise<ConfigSnapshot> {
    // MULTI makes the revision and the records one consistent read.
    const results = await this.redis.multi().get(this.revisionKey).hgetallBuffer(this.recordsKey).exec();
    if (results === null) throw new Error("redis aborted the read transaction");
    const [revisionResult, recordsResult] = results;
    if (revisionResult?.[0]) throw revisionResult[0];
    if (recordsResult?.[0]) throw recordsResult[0];
    const revision = BigInt((revisionResult?.[1] as string | null) ?? "0");
    const records = (recordsResult?.[1] ?? {}) as Record<string, Buffer>;
    return snapshotFromRecords(revision, Object.entries(records));
  }

  async commit(expectedRevision: bigint, changes: readonly ConfigChange[]): Promise<bigint> {
    const args: Array<string | Buffer> = [expectedRevision.toString(), String(changes.length)];
    for (const w of changes.map(recordWrite)) {
      if (w.value === undefined) args.push("del", w.key);
      else args.push("put", w.key, Buffer.from(w.value.buffer, w.value.byteOffset, w.value.byteLength));
    }
    try {
      const next = (await this.redis.eval(COMMIT_SCRIPT, 2, this.revisionKey, this.recordsKey, ...args)) as string;
      return BigInt(next);
    } catch (err) {
      const m = /CONFLICT (\d+)/.exec((err as Error).message);
      if (m?.[1] !== undefined) throw new StoreConflictError(expectedRevision, BigInt(m[1]));
      throw err;
    }
  }

  async getPolicyState(key: PolicyStateKey): Promise<StoredPolicyState> {
    const raw = (await this.redis.callBuffer(
      "EVAL",
      GET_POLICY_SCRIPT,
      "3",
      ...this.policyKeys(key.application),
      policyStatePrefix(key.application),
      policyStateField(key),
    )) as Buffer;
    return decodePolicyState(raw);
  }

  async swapPolicyState(
    key: PolicyStateKey,
    expectedVersion: bigint,
    state: Uint8Array,
    bounds: PolicyStateBounds = DEFAULT_POLICY_STATE_BOUNDS,
  ): Promise<PolicyStateSwap> {
    const version = expectedVersion + 1n;
    // callBuffer: the reply carries binary state, which a string reply would mangle.
    const reply = (await this.redis.callBuffer(
      "EVAL",
      SWAP_POLICY_SCRIPT,
      "3",
      ...this.policyKeys(key.application),
      policyStatePrefix(key.application),
      policyStateField(key),
      expectedVersion.toString(),
      encodePolicyState(version, state),
      String(bounds.maxUsers),
      String(bounds.maxUserBytes),
    )) as [number, Buffer | number, number?, number?];
    if (reply[0] === 1) return { applied: true, version, evicted: Number(reply[1]), users: Number(reply[2]), userBytes: Number(reply[3]) };
    return { applied: false, ...decodePolicyState(reply[1] as Buffer) };
  }

  async clearPolicyStates(application: string): Promise<number> {
    const [states, , meta] = this.policyKeys(application);
    return (await this.redis.eval(CLEAR_POLICIES_SCRIPT, 2, states, meta)) as number;
  }

  /**
   * One application's policy keys: its states, its users by last use, its
   * bookkeeping. Names are DNS labels (no ':'), so clearing one reads only its own.
   */
  private policyKeys(application: string): [string, string, string] {
    return [this.policyKeyPrefix + application, `${this.policyLruPrefix}${application}`, `${this.policyMetaPrefix}${application}`];
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
