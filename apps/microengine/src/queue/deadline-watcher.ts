import { ScanTimeoutError } from "@engine/core";
import { DelayedError, type Job, Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { BountyProcessor } from "../intake/bounty-processor.js";
import { closeWithin, redisCloseLimitMs } from "../operations/bounded-close.js";
import { loggableMessage } from "../operations/error-message.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { Bounty } from "../protocol/bounty.js";
import type { RedisAnswerLedger } from "./answer-ledger.js";
import { bountyJobId, deadlineTargetOf } from "./job-data.js";
import { deadlineQueueName, lastLookMs, queueTiming } from "./queue-timing.js";
import { quitRedis, redisConnection } from "./redis-connections.js";
import type { RedisSeal } from "./redis-seal.js";

/** What watching deadlines needs. */
interface WatcherContext {
  processor: BountyProcessor;
  ledger: RedisAnswerLedger;
  seal: RedisSeal;
  metrics: EngineMetrics;
  logger: Logger;
}

/** True while a live worker holds the bounty's job (an active job whose lock is still renewed). */
async function inLiveHands(
  bounties: Queue,
  connection: Redis,
  target: Pick<Bounty, "id" | "phase">,
): Promise<boolean> {
  const job = await bounties.getJob(bountyJobId(target));
  if (!job) return false;
  const state = await job.getState();
  if (state === "completed") return true; // its worker posted the answer, or gave up at expiration
  if (state !== "active") return false;
  return (await connection.exists(`${bounties.qualifiedName}:${job.id}:lock`)) === 1;
}

/**
 * One deadline job: answers its bounty `unknown` unless it was answered, expired, or a live
 * worker still holds it (then it looks again every second until just before expiration).
 */
async function watchDeadline(
  job: Job,
  token: string | undefined,
  liveHands: (target: Pick<Bounty, "id" | "phase">) => Promise<boolean>,
  context: WatcherContext,
): Promise<string> {
  const { processor, ledger, seal, metrics, logger } = context;
  const target = deadlineTargetOf(job.data, job.id, seal);
  if (!target) {
    logger.warn({ job: job.id }, "a deadline job does not verify under QUEUE_SECRET: ignored");
    return "forged";
  }
  if (Date.now() >= target.expiresAt) return "expired";
  if (await ledger.isPosted(target)) return "answered";
  // A live owner answers itself (unknown at the scan's deadline if need be): no second POST.
  // Looked at again every second until just before expiration, in case the owner dies.
  if (await liveHands(target)) {
    const again = Math.min(Date.now() + 1_000, target.expiresAt - lastLookMs);
    if (again <= Date.now()) return "in hand";
    await job.moveToDelayed(again, token);
    throw new DelayedError();
  }
  metrics.queueEvents.inc({ event: "answered_by_watcher" });
  await processor.answerUnknown(
    target,
    new ScanTimeoutError({
      message: "@engine/microengine: no worker answered the bounty before its deadline",
      publicMessage: "no worker answered in time",
    }),
  );
  return "answered";
}

/**
 * Watches bounty deadlines: a delayed job per bounty fires between the scan's deadline and the
 * expiration; if nobody answered by then (every worker dead, a job lost in a crash), it answers
 * `unknown`. `serve` and every worker run one, and the answer ledger makes the first one win.
 */
export function startDeadlineWatcher(options: WatcherContext & { url: string; queue: string }): {
  close(): Promise<void>;
} {
  const connection = redisConnection(options.url, "worker", options.logger);
  const bounties = new Queue(options.queue, { connection });
  bounties.on("error", () => {});
  const liveHands = (target: Pick<Bounty, "id" | "phase">) =>
    inLiveHands(bounties, connection, target);
  const watcher = new Worker(
    deadlineQueueName(options.queue),
    (job: Job, token?: string) => watchDeadline(job, token, liveHands, options),
    {
      connection,
      concurrency: 16,
      lockDuration: queueTiming.lockMs,
      stalledInterval: queueTiming.stalledIntervalMs,
    },
  );
  watcher.on("error", (error: Error) =>
    options.logger.warn({ error: loggableMessage(error) }, "deadline watcher error (retrying)"),
  );
  return {
    close: async () => {
      await closeWithin(watcher.close(), redisCloseLimitMs, () => void watcher.close(true));
      await closeWithin(bounties.close());
      await quitRedis(connection);
    },
  };
}
