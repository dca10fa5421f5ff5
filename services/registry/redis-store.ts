import { Redis } from "ioredis";
import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";
import type { Logger } from "../shared/index.js";
import {
  decodePolicyState,
  encodePolicyState,
  type PolicyStateKey,
  type PolicyStateSwap,
  policyStateField,
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
 * Compare-and-set of one policy state in the hash KEYS[1]; values are an
 * 8-byte big-endian version then the state. ARGV: field, expected version as
 * 8 bytes (so the check compares bytes, exactly), new value. A missing value
 * is version 0. Answers {1} when stored, else {0, current value}.
 */
const SWAP_POLICY_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local ver = string.rep('\\0', 8)
if cur then ver = string.sub(cur, 1, 8) end
if ver ~= ARGV[2] then return {0, cur or ''} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return {1}
`;

/**
 * Empties every policy state in the hash KEYS[1] (one application's), each
 * stored again as its version + 1 and no state. Versions are 8-byte
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

  private constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.revisionKey = `${prefix}revision`;
    this.recordsKey = `${prefix}config`;
    this.policyKeyPrefix = `${prefix}policy:`;
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
    return decodePolicyState((await this.redis.hgetBuffer(this.policyKey(key.application), policyStateField(key))) ?? undefined);
  }

  async swapPolicyState(key: PolicyStateKey, expectedVersion: bigint, state: Uint8Array): Promise<PolicyStateSwap> {
    const version = expectedVersion + 1n;
    // callBuffer: the reply carries binary state, which a string reply would mangle.
    const reply = (await this.redis.callBuffer(
      "EVAL",
      SWAP_POLICY_SCRIPT,
      "1",
      this.policyKey(key.application),
      policyStateField(key),
      encodePolicyState(expectedVersion, new Uint8Array()),
      encodePolicyState(version, state),
    )) as [number, Buffer?];
    if (reply[0] === 1) return { applied: true, version };
    const current = decodePolicyState(reply[1] !== undefined && reply[1].length > 0 ? reply[1] : undefined);
    return { applied: false, ...current };
  }

  async clearPolicyStates(application: string): Promise<number> {
    return (await this.redis.eval(CLEAR_POLICIES_SCRIPT, 1, this.policyKey(application))) as number;
  }

  /** One hash per application (names are DNS labels: no ':'), so clearing one reads only its own states. */
  private policyKey(application: string): string {
    return this.policyKeyPrefix + application;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
