/**
 * How the queue treats a job, derived from a bounty's time budget (30 s by default): a worker
 * holds a job's lock for `lockMs`, renewed every half; a worker that dies loses it, and the
 * stalled check (every `stalledIntervalMs`) hands the job to another worker within about 7.5 s,
 * with most of the budget left. A job whose worker dies twice (it stalls more than
 * `maxStalledCount` times), or that throws `attempts` times, is failed for good (dead-lettered)
 * and answered unknown. Connections reconnect within half a second of Redis coming back, so a
 * short Redis restart keeps the locks.
 */
export const queueTiming = {
  lockMs: 5_000,
  stalledIntervalMs: 2_500,
  maxStalledCount: 1,
  attempts: 3,
  retryDelayMs: 500,
  /** Longest a webhook waits for Redis to take a bounty before answering 503. */
  enqueueTimeoutMs: 2_000,
  /** How often job counts are read for /readyz and the metrics. */
  countsEveryMs: 1_000,
} as const;

/** The watcher's last look at a bounty in a live worker's hands, before its expiration, in ms. */
export const lastLookMs = 1_000;

/** The queue of deadline jobs that `serve` and every worker watch. */
export function deadlineQueueName(queue: string): string {
  return `${queue}-deadlines`;
}

/** At shutdown, a worker hands back a bounty with more time left than this, in ms. */
export const handBackWhenLeftMs = 15_000;
