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
