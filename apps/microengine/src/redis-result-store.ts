import type { ResultCacheStore } from "@engine/core";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { redactUrls } from "./redact.js";

/** The Redis result store and how to close its connection. */
export interface RedisResultStore extends ResultCacheStore {
  close(): Promise<void>;
}

/**
 * The result cache in Redis (queue mode: every worker and the receiver share it), one key per
 * entry under `<prefix>:result:`, expiring with its TTL. It fails fast: with Redis away a
 * lookup is a miss and a store is skipped (the cache bounds each call too), never a held scan.
 * @param url the QUEUE_URL
 * @param prefix the QUEUE_NAME, so that two engines on one Redis keep their caches apart
 */
export function createRedisResultStore(
  url: string,
  prefix: string,
  logger: Logger,
): RedisResultStore {
  const redis = new Redis(url, {
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 3_000,
    lazyConnect: false,
  });
  redis.on("error", (error: Error) =>
    logger.debug(
      { error: redactUrls(error.message) },
      "result cache connection error (lookups miss meanwhile)",
    ),
  );
  const keyOf = (key: string) => `${prefix}:result:${key}`;
  return {
    get: async (key) => {
      const text = await redis.get(keyOf(key));
      return text === null ? undefined : JSON.parse(text);
    },
    set: async (key, value, ttlMs) => {
      await redis.set(keyOf(key), JSON.stringify(value), "PX", ttlMs);
    },
    close: async () => {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
