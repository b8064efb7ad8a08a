import type { ResultCacheStore } from "@engine/core";
import type { Logger } from "pino";
import { z } from "zod";
import { quitRedis, redisConnection } from "../queue/redis-connections.js";
import type { RedisSeal } from "../queue/redis-seal.js";

/** A stored entry: the result's JSON and its seal. */
const sealedEntrySchema = z.object({ value: z.string(), seal: z.string() });

/** JSON.parse, or undefined for text that is not JSON. */
function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The Redis result store and how to close its connection. */
export interface RedisResultStore extends ResultCacheStore {
  close(): Promise<void>;
}

/** The largest entry kept, in bytes of JSON: a result is about 1 KB; more is not a result. */
export const maximumEntryBytes = 64 * 1024;

/**
 * Stores one entry and keeps the cache's total under its bound, atomically: every entry's
 * size is in a hash, their total in a counter, their expiry times in a sorted set; entries
 * past their expiry leave the books (100 per call), then those expiring soonest (the oldest,
 * with one TTL) go until the total fits. (Redis evicts nothing here: BullMQ needs `noeviction` on the same server.)
 * Times come from Redis itself (TIME), so workers with skewed clocks keep one set of books.
 * KEYS: entry, index (zset), sizes (hash), total (counter).
 * ARGV: value, ttl ms, max bytes.
 */
const storeScript = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local size = string.len(ARGV[1]) + string.len(KEYS[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, key in ipairs(expired) do
  local old = tonumber(redis.call('HGET', KEYS[3], key) or '0')
  redis.call('DEL', key)
  redis.call('HDEL', KEYS[3], key)
  redis.call('ZREM', KEYS[2], key)
  redis.call('DECRBY', KEYS[4], old)
end
local previous = tonumber(redis.call('HGET', KEYS[3], KEYS[1]) or '0')
redis.call('DECRBY', KEYS[4], previous)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], size)
local total = redis.call('INCRBY', KEYS[4], size)
while total > tonumber(ARGV[3]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 then break end
  local key = oldest[1]
  local old = tonumber(redis.call('HGET', KEYS[3], key) or '0')
  redis.call('DEL', key)
  redis.call('HDEL', KEYS[3], key)
  redis.call('ZREM', KEYS[2], key)
  total = redis.call('DECRBY', KEYS[4], old)
end
return total
`;

/**
 * The result cache in Redis (queue mode: every worker and the receiver share it), under
 * `<prefix>:result:`, each entry expiring with its TTL and the whole bounded by `maxBytes`
 * (oldest out first). It fails fast: with Redis away a lookup is a miss and a store is skipped,
 * never a held scan. A value larger than {@link maximumEntryBytes} is neither stored nor read
 * (a hostile value cannot make an answer unsendable).
 * @param url the QUEUE_URL
 * @param prefix the QUEUE_NAME, so that two engines on one Redis keep their caches apart
 * @param options.maxBytes the bound on the entries' bytes (CACHE_MAX_BYTES)
 * @param options.seal QUEUE_SECRET's seal: entries that do not verify under their key are misses
 */
export function createRedisResultStore(
  url: string,
  prefix: string,
  logger: Logger,
  options: { maxBytes: number; seal: RedisSeal },
): RedisResultStore {
  const { seal } = options;
  const redis = redisConnection(url, "cache", logger);
  // Connected now: without an offline queue, commands sent before would all miss.
  redis.connect().catch(() => {});
  redis.defineCommand("engineStoreResult", { numberOfKeys: 4, lua: storeScript });
  // One hash tag: the cache's keys stay on one node of a cluster.
  const books = `{${prefix}:result}`;
  const keyOf = (key: string) => `${books}:${key}`;
  return {
    get: async (key) => {
      const stored = await redis.get(keyOf(key));
      if (stored === null || Buffer.byteLength(stored) > maximumEntryBytes) return undefined;
      // Sealed under QUEUE_SECRET and its own key: a rewritten or copied entry is a miss.
      const envelope = sealedEntrySchema.safeParse(safeJson(stored));
      if (
        !envelope.success ||
        !seal.verify("result", keyOf(key), envelope.data.value, envelope.data.seal)
      ) {
        logger.warn("a cached result in Redis does not verify under QUEUE_SECRET: ignored");
        return undefined;
      }
      return safeJson(envelope.data.value);
    },
    set: async (key, value, ttlMs) => {
      const inner = JSON.stringify(value);
      const text = JSON.stringify({ value: inner, seal: seal.sign("result", keyOf(key), inner) });
      if (Buffer.byteLength(text) > maximumEntryBytes) return;
      await (
        redis as unknown as {
          engineStoreResult(...args: Array<string | number>): Promise<number>;
        }
      ).engineStoreResult(
        keyOf(key),
        `${books}:index`,
        `${books}:sizes`,
        `${books}:total`,
        text,
        ttlMs,
        options.maxBytes,
      );
    },
    close: async () => {
      await quitRedis(redis);
    },
  };
}
