import { setTimeout as sleep } from "node:timers/promises";
import { type Job, Queue, Worker } from "bullmq";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import type { BountyProcessor } from "../intake/bounty-processor.js";
import { closeWithin } from "../operations/bounded-close.js";
import { loggableMessage } from "../operations/error-message.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { Bounty } from "../protocol/bounty.js";
import type { RedisAnswerLedger } from "./answer-ledger.js";
import { startDeadlineWatcher } from "./deadline-watcher.js";
import { ForgedJobError, failedJobTargetOf, fromJobData } from "./job-data.js";
import { QueueCounts } from "./queue-counts.js";
import { handBackWhenLeftMs, queueTiming } from "./queue-timing.js";
import { checkedRedisConnection, quitRedis, redisConnection } from "./redis-connections.js";
import type { RedisSeal } from "./redis-seal.js";

/** A running queue worker. */
export interface QueueWorker {
  /** Job counts by state, as last read. */
  readonly counts: Record<string, number>;
  /** True while connected to Redis and taking jobs. */
  running(): boolean;
  /**
   * Stops taking jobs and lets those in hand finish; after `graceMs` (10 s), hands back those
   * with more than 15 s left (another worker retries them) and answers the others unknown.
   */
  close(graceMs?: number): Promise<void>;
}

/** What a queue worker's parts share. */
interface WorkerContext {
  processor: BountyProcessor;
  ledger: RedisAnswerLedger;
  seal: RedisSeal;
  metrics: EngineMetrics;
  logger: Logger;
}

/**
 * Runs one bounty job: a job that does not verify under QUEUE_SECRET is ignored (never run,
 * retried or answered: its response_url is the forger's); one whose bounty no longer validates
 * throws (retried, then answered unknown); an expired or answered one is skipped.
 */
async function runBountyJob(job: Job, context: WorkerContext): Promise<string> {
  const { processor, ledger, seal, metrics, logger } = context;
  metrics.queueWaitSeconds.observe(Math.max(0, Date.now() - job.timestamp) / 1000);
  let bounty: Bounty;
  try {
    bounty = fromJobData(job.data, job.id, seal);
  } catch (error) {
    if (!(error instanceof ForgedJobError)) throw error;
    logger.warn({ job: job.id }, error.message);
    return "forged";
  }
  if (Date.now() >= bounty.expiresAt) {
    metrics.queueEvents.inc({ event: "expired" });
    logger.error({ bounty: bounty.id }, "a queued bounty expired before a worker took it");
    return "expired";
  }
  // A Redis blip here is no reason to fail the job: the ledger decides again before the POST.
  if (await ledger.isPosted(bounty).catch(() => false)) return "answered";
  await processor.run(bounty); // rejects with HandedBack at shutdown: the job is retried
  return "answered";
}

/** A failed attempt: counted as retried, or, when it was the last, dead-lettered and answered unknown. */
function onJobFailed(job: Job | undefined, error: Error, context: WorkerContext): void {
  if (!job) return;
  const { processor, seal, metrics, logger } = context;
  const final =
    job.attemptsMade >= (job.opts.attempts ?? 1) || /stalled more than/.test(error.message);
  if (!final) {
    metrics.queueEvents.inc({ event: "retried" });
    return;
  }
  metrics.queueEvents.inc({ event: "dead_lettered" });
  const target = failedJobTargetOf(job.data, job.id, seal);
  logger.error(
    { job: job.id, error: loggableMessage(error), answerable: target !== undefined },
    "a job failed for good (dead-lettered)",
  );
  if (target && Date.now() < target.expiresAt) void processor.answerUnknown(target, error);
}

/** The BullMQ worker taking bounty jobs, its events counted and logged. */
function bountyWorker(
  config: Pick<EngineConfig, "QUEUE_NAME" | "WORKER_CONCURRENCY">,
  connection: ReturnType<typeof redisConnection>,
  context: WorkerContext,
): Worker {
  const { metrics, logger } = context;
  const worker = new Worker(config.QUEUE_NAME, (job: Job) => runBountyJob(job, context), {
    connection,
    concurrency: config.WORKER_CONCURRENCY,
    lockDuration: queueTiming.lockMs,
    stalledInterval: queueTiming.stalledIntervalMs,
    maxStalledCount: queueTiming.maxStalledCount,
  });
  worker.on("error", (error: Error) =>
    logger.warn({ error: loggableMessage(error) }, "queue worker error (retrying)"),
  );
  worker.on("stalled", (jobId: string) => {
    metrics.queueEvents.inc({ event: "stalled" });
    logger.warn(
      { job: jobId },
      "a job stalled (its worker died or lost its lock): handed to another worker",
    );
  });
  worker.on("failed", (job: Job | undefined, error: Error) => onJobFailed(job, error, context));
  return worker;
}

/**
 * Queue mode, scanning side: a BullMQ Worker taking bounty jobs (WORKER_CONCURRENCY at once)
 * and answering them like `serve` alone does, through the answer ledger so that a bounty is
 * answered once with one verdict. A job whose bounty no longer validates is retried, then
 * failed for good and answered unknown; a worker that dies mid-job has its jobs taken over by
 * the others. It also watches deadlines.
 */
export async function startQueueWorker(
  options: WorkerContext & {
    config: Pick<EngineConfig, "QUEUE_NAME" | "WORKER_CONCURRENCY"> & { QUEUE_URL: string };
  },
): Promise<QueueWorker> {
  const { config, processor, metrics, logger } = options;
  // Job counts on a connection that fails fast: an outage must not pile up queued commands.
  const probe = await checkedRedisConnection(config.QUEUE_URL, "receiver", logger);
  const queue = new Queue(config.QUEUE_NAME, { connection: probe });
  queue.on("error", () => {});
  const counts = new QueueCounts(queue, metrics);
  const jobs = redisConnection(config.QUEUE_URL, "worker", logger);
  const worker = bountyWorker(config, jobs, options);
  const watcher = startDeadlineWatcher({
    ...options,
    url: config.QUEUE_URL,
    queue: config.QUEUE_NAME,
  });
  logger.info(
    { queue: config.QUEUE_NAME, concurrency: config.WORKER_CONCURRENCY },
    `queue worker taking bounties from ${config.QUEUE_NAME}`,
  );
  return {
    get counts() {
      return counts.counts;
    },
    running: () => worker.isRunning() && probe.status === "ready",
    close: async (graceMs = 10_000) => {
      counts.stop();
      const finished = worker.close(); // no new jobs; those in hand go on
      const late = await Promise.race([
        finished.then(() => false),
        sleep(graceMs).then(() => true),
      ]);
      // Past the grace period, bounties another worker still has time for go back to the queue
      // unanswered (their jobs are retried); the others are answered unknown now.
      const draining = processor.drain(late ? { handBackWhenLeftMs } : {});
      // Redis away: BullMQ's close would wait for it for ever.
      await closeWithin(finished, graceMs, () => void worker.close(true).catch(() => {}));
      await Promise.allSettled([watcher.close(), draining, closeWithin(queue.close())]);
      await Promise.all([quitRedis(jobs), quitRedis(probe)]);
    },
  };
}
