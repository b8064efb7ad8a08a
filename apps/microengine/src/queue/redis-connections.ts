import { Redis } from "ioredis";
import type { Logger } from "pino";
import { closeWithin, redisCloseLimitMs } from "../operations/bounded-close.js";
import { loggableMessage } from "../operations/error-message.js";
import { redactUrls } from "../operations/redact.js";

/**
 * What a connection to QUEUE_URL is for; each role's settings, in one place:
 * - `receiver` (serve's webhook, job counts): fails fast (one retry, no offline queue), so a
 *   webhook answers 503 at once while Redis is away;
 * - `worker` (BullMQ workers and the deadline watcher): retries its commands for ever, as
 *   BullMQ needs;
 * - `ledger` (the answer ledger): a few retries, bounded by the processor's own time limits;
 * - `cache` (the shared result cache): never retries nor queues (a lookup is a miss, a store
 *   is skipped, a scan never waits).
 * Every role connects within 3 s and reconnects within half a second of Redis coming back.
 */
export type RedisRole = "receiver" | "worker" | "ledger" | "cache";

const roleSettings = {
  receiver: { maxRetriesPerRequest: 1, enableOfflineQueue: false },
  worker: { maxRetriesPerRequest: null },
  ledger: { maxRetriesPerRequest: 2 },
  cache: { maxRetriesPerRequest: 0, enableOfflineQueue: false },
} as const satisfies Record<RedisRole, object>;

const roleErrors: Record<RedisRole, string> = {
  receiver: "queue connection error (retrying)",
  worker: "queue connection error (retrying)",
  ledger: "answer ledger connection error (retrying)",
  cache: "result cache connection error (lookups miss meanwhile)",
};

/**
 * A Redis connection to `url` (QUEUE_URL) for `role`, not yet connected (it connects on its
 * first command, or with `connect()`); its errors are logged with the password redacted (the
 * cache's at debug: a miss says enough).
 */
export function redisConnection(url: string, role: RedisRole, logger: Logger): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3_000,
    retryStrategy: (attempt: number) => Math.min(attempt * 50, 500),
    ...roleSettings[role],
  });
  redis.on("error", (error: Error) => {
    const fields = { error: loggableMessage(error) };
    if (role === "cache") logger.debug(fields, roleErrors[role]);
    else logger.warn(fields, roleErrors[role]);
  });
  return redis;
}

/**
 * {@link redisConnection}, connected and pinged once: fails with a message naming QUEUE_URL
 * (its password redacted) when Redis cannot be reached now.
 */
export async function checkedRedisConnection(
  url: string,
  role: RedisRole,
  logger: Logger,
): Promise<Redis> {
  const redis = redisConnection(url, role, logger);
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new Error(
      redactUrls(`QUEUE_URL: cannot reach Redis at ${url}: ${loggableMessage(error)}`),
    );
  }
}

/** QUIT within {@link redisCloseLimitMs}, else a hard disconnect (Redis away). Never rejects. */
export function quitRedis(redis: Redis): Promise<void> {
  return closeWithin(redis.quit(), redisCloseLimitMs, () => redis.disconnect());
}
