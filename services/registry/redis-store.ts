import { Redis } from "ioredis";
import type { Logger } from "../shared/index.js";
import type { ConfigChange, ConfigSnapshot } from "../../gen/clipper/v1/resources_pb.js";
import { StoreConflictError, recordWrite, snapshotFromRecords, type RegistryStore } from "./store.js";

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

export interface RedisStoreOptions {
  /** redis://host:port[/db] */
  url: string;
  /** Prefix of the store's two keys, e.g. "clipper:". */
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

  private constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.revisionKey = `${prefix}revision`;
    this.recordsKey = `${prefix}config`;
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

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
