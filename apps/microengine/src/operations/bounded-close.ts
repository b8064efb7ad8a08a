import type { Redis } from "ioredis";

/** Longest any one close of a Redis client or BullMQ object may take at shutdown, in ms. */
export const redisCloseLimitMs = 3_000;

/**
 * Waits for `closing` at most `limitMs` (a plain timer, held), then calls `force` (a hard
 * disconnect): a Redis that is away must not hold a shutdown. Never rejects.
 */
export async function closeWithin(
  closing: Promise<unknown>,
  limitMs = redisCloseLimitMs,
  force?: () => void,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([
    closing.then(
      () => false,
      () => false,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), limitMs);
    }),
  ]);
  clearTimeout(timer);
  if (late) force?.();
}

/** QUIT within {@link redisCloseLimitMs}, else a hard disconnect (Redis away). Never rejects. */
export function quitRedis(redis: Redis): Promise<void> {
  return closeWithin(redis.quit(), redisCloseLimitMs, () => redis.disconnect());
}

/** Longest a shutdown lets HTTP connections finish once the intake is drained, in ms. */
export const connectionGraceMs = 10_000;

/**
 * Closes an HTTP app so that no client can hold a shutdown: it stops listening at once (new
 * requests on kept connections get 503), waits for `drain` (answers in flight go out
 * meanwhile: never after a client's half-sent request), then gives the connections still open
 * {@link connectionGraceMs} to finish and closes the rest. Node stops its header and request
 * timeouts once a server closes, so without the last step one socket trickling a header line
 * would hold the process for ever.
 */
export async function closeHttpDraining(
  app: { close(): PromiseLike<unknown>; server: { closeAllConnections(): void } },
  drain: () => Promise<unknown>,
  graceMs = connectionGraceMs,
): Promise<void> {
  const closing = Promise.resolve(app.close());
  closing.catch(() => {}); // awaited below, after the drain; never an unhandled rejection
  await drain();
  await closeWithin(closing, graceMs, () => app.server.closeAllConnections());
  await closing.catch(() => {});
}
