import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { ScanTimeoutError } from "@engine/core";
import { DelayedError, FlowProducer, type Job, Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import type { BountyIntake, IntakeLoad, SubmitOutcome } from "../intake/bounty-intake.js";
import type { BountyProcessor } from "../intake/bounty-processor.js";
import { responseUrlRefusal } from "../net/response-delivery.js";
import { closeWithin, redisCloseLimitMs } from "../operations/bounded-close.js";
import { loggableMessage } from "../operations/error-message.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { redactUrls } from "../operations/redact.js";
import type { Bounty } from "../protocol/bounty.js";
import { AcceptedBackstop } from "./accepted-backstop.js";
import type { RedisAnswerLedger } from "./answer-ledger.js";
import {
  bountyJobId,
  deadlineJobId,
  deadlineTargetOf,
  ForgedJobError,
  failedJobTargetOf,
  fromJobData,
  toDeadlineJobData,
  toJobData,
} from "./job-data.js";
import { checkedRedisConnection, quitRedis, redisConnection } from "./redis-connections.js";
import type { RedisSeal } from "./redis-seal.js";

export { bountyJobId, toJobData } from "./job-data.js";

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
const lastLookMs = 1_000;

/** The queue of deadline jobs that `serve` and every worker watch. */
function deadlineQueueName(queue: string): string {
  return `${queue}-deadlines`;
}

/** Job counts read every second, for /readyz, saturation and the metrics. */
class QueueCounts {
  counts: Record<string, number> = {};
  readonly #timer: NodeJS.Timeout;
  constructor(queue: Queue, metrics: EngineMetrics) {
    const read = (): void => {
      queue
        .getJobCounts("waiting", "active", "delayed", "failed")
        .then((counts) => {
          this.counts = counts;
          for (const [state, count] of Object.entries(counts))
            metrics.queueJobs.set({ state }, count);
        })
        .catch(() => {}); // Redis away: the last counts stay, readiness says why
    };
    read();
    this.#timer = setInterval(read, queueTiming.countsEveryMs);
    this.#timer.unref();
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

/**
 * Watches bounty deadlines: a delayed job per bounty fires between the scan's deadline and the
 * expiration; if nobody answered by then (every worker dead, a job lost in a crash), it answers
 * `unknown`. `serve` and every worker run one, and the answer ledger makes the first one win.
 */
function startDeadlineWatcher(options: {
  url: string;
  queue: string;
  processor: BountyProcessor;
  ledger: RedisAnswerLedger;
  seal: RedisSeal;
  metrics: EngineMetrics;
  logger: Logger;
}): { close(): Promise<void> } {
  const { processor, ledger, seal, metrics, logger } = options;
  const connection = redisConnection(options.url, "worker", logger);
  const bounties = new Queue(options.queue, { connection });
  bounties.on("error", () => {});
  /** True while a live worker holds the bounty's job (an active job whose lock is still renewed). */
  const inLiveHands = async (target: { id: string; phase: string }): Promise<boolean> => {
    const job = await bounties.getJob(bountyJobId(target as Pick<Bounty, "id" | "phase">));
    if (!job) return false;
    const state = await job.getState();
    if (state === "completed") return true; // its worker posted the answer, or gave up at expiration
    if (state !== "active") return false;
    return (await connection.exists(`${bounties.qualifiedName}:${job.id}:lock`)) === 1;
  };
  const watcher = new Worker(
    deadlineQueueName(options.queue),
    async (job: Job, token?: string) => {
      const target = deadlineTargetOf(job.data, job.id, seal);
      if (!target) {
        logger.warn({ job: job.id }, "a deadline job does not verify under QUEUE_SECRET: ignored");
        return "forged";
      }
      if (Date.now() >= target.expiresAt) return "expired";
      if (await ledger.isPosted(target)) return "answered";
      // A live owner answers itself (unknown at the scan's deadline if need be): no second POST.
      // Looked at again every second until just before expiration, in case the owner dies.
      if (await inLiveHands(target)) {
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
    },
    {
      connection,
      concurrency: 16,
      lockDuration: queueTiming.lockMs,
      stalledInterval: queueTiming.stalledIntervalMs,
    },
  );
  watcher.on("error", (error: Error) =>
    logger.warn({ error: redactUrls(error.message) }, "deadline watcher error (retrying)"),
  );
  return {
    close: async () => {
      await closeWithin(watcher.close(), redisCloseLimitMs, () => void watcher.close(true));
      await closeWithin(bounties.close());
      await quitRedis(connection);
    },
  };
}

/**
 * Queue mode, receiving side: `serve` with QUEUE_URL verifies and parses as alone, then adds
 * the bounty as a BullMQ job whose id is the bounty and phase, together (atomically, one Redis
 * transaction) with its deadline job. The job id is the replay claim: a redelivered webhook, or
 * one that reached two receivers, never makes a second job. While Redis cannot take the job
 * the webhook answers 503 (the marketplace retries), never 202. When the waiting jobs reach
 * BOUNTY_BACKLOG, 503 too. It also watches deadlines (see above).
 */
export class BullBountyQueue implements BountyIntake {
  readonly inFlight = 0;
  readonly #counts: QueueCounts;
  #draining = false;

  private constructor(
    private readonly config: EngineConfig & { QUEUE_URL: string },
    private readonly parts: {
      redis: Redis;
      queue: Queue;
      flows: FlowProducer;
      watcher: { close(): Promise<void> };
      backstop: AcceptedBackstop;
      seal: RedisSeal;
      metrics: EngineMetrics;
      logger: Logger;
    },
  ) {
    this.#counts = new QueueCounts(parts.queue, parts.metrics);
  }

  /** Connects (failing fast with a message naming QUEUE_URL) and starts the deadline watcher. */
  static async open(options: {
    config: EngineConfig & { QUEUE_URL: string };
    processor: BountyProcessor;
    ledger: RedisAnswerLedger;
    seal: RedisSeal;
    metrics: EngineMetrics;
    logger: Logger;
  }): Promise<BullBountyQueue> {
    const { config, metrics, logger, seal } = options;
    const redis = await checkedRedisConnection(config.QUEUE_URL, "receiver", logger);
    const queue = new Queue(config.QUEUE_NAME, { connection: redis });
    const flows = new FlowProducer({ connection: redis });
    queue.on("error", (error: Error) =>
      logger.warn({ error: redactUrls(error.message) }, "queue error"),
    );
    flows.on("error", (error: Error) =>
      logger.warn({ error: redactUrls(error.message) }, "queue error"),
    );
    const watcher = startDeadlineWatcher({
      ...options,
      url: config.QUEUE_URL,
      queue: config.QUEUE_NAME,
    });
    const backstop = new AcceptedBackstop({
      processor: options.processor,
      isPosted: (target) => options.ledger.isPosted(target),
      marginMs: config.ANSWER_MARGIN_MS,
      metrics,
      logger,
    });
    return new BullBountyQueue(config, {
      redis,
      queue,
      flows,
      watcher,
      backstop,
      seal,
      metrics,
      logger,
    });
  }

  responseRefusal(url: string): string | undefined {
    return responseUrlRefusal(url, {
      allowedHosts: this.config.RESPONSE_ALLOWED_HOSTS,
      allowPrivateAddresses: this.config.ARTIFACT_ALLOW_PRIVATE_ADDRESSES,
    });
  }

  load(): IntakeLoad {
    const { waiting = 0, active = 0, delayed = 0 } = this.#counts.counts;
    return {
      running: active,
      concurrency: 0,
      waiting,
      backlog: this.config.BOUNTY_BACKLOG,
      open: waiting + active + delayed,
      saturated: waiting >= this.config.BOUNTY_BACKLOG,
    };
  }

  /** Whether Redis answers a PING within a second, and the job counts by state. */
  async queueState(): Promise<{ ok: boolean; jobs: Record<string, number> }> {
    const ok = await Promise.race([
      this.parts.redis.ping().then(
        () => true,
        () => false,
      ),
      sleep(1_000).then(() => false),
    ]);
    return { ok, jobs: this.#counts.counts };
  }

  async submit(bounty: Bounty): Promise<SubmitOutcome> {
    const { metrics, logger, backstop } = this.parts;
    if (this.#draining || this.load().saturated || !backstop.hasRoom) {
      metrics.overloaded.inc({ action: "refused_503" });
      return "overloaded";
    }
    const adding = this.#enqueue(bounty);
    // Kept whenever the job is queued, whatever the webhook answered: a duplicate (the job of
    // a 503'd first delivery that landed late, or another receiver's) and a job that landed
    // after the 2 s timeout are answered from here too if Redis then stays away.
    adding.then(
      () => backstop.keep(bounty, bountyJobId(bounty)),
      () => {},
    );
    const timeout = new AbortController();
    const outcome = await Promise.race([
      adding.catch((error: unknown) => {
        logger.warn(
          { bounty: bounty.id, error: loggableMessage(error) },
          "could not queue a bounty: answering 503",
        );
        return "unavailable" as const;
      }),
      sleep(queueTiming.enqueueTimeoutMs, undefined, { signal: timeout.signal }).then(
        () => "unavailable" as const,
        () => "unavailable" as const,
      ),
    ]);
    timeout.abort();
    if (outcome === "duplicate")
      metrics.bounties.inc({ phase: bounty.phase, outcome: "duplicate" });
    return outcome;
  }

  /**
   * Adds the bounty's job and deadline job (idempotent: their ids are the bounty's). Which of
   * two receivers of one bounty got it first is decided by a receipt key set with NX: the other
   * answers `duplicate`, after adding the jobs too (so that 202 always means queued).
   */
  async #enqueue(bounty: Bounty): Promise<SubmitOutcome> {
    const { redis } = this.parts;
    const jobId = bountyJobId(bounty);
    const receipt = `${this.config.QUEUE_NAME}:received:${jobId}`;
    const token = randomUUID();
    const until = String(bounty.expiresAt + 60_000);
    const first = (await redis.set(receipt, token, "PXAT", until, "NX")) === "OK";
    try {
      await this.#addJobs(bounty);
    } catch (error) {
      // Not queued: the marketplace's retry must be accepted, not taken for a duplicate.
      if (first) await redis.eval(releaseReceiptScript, 1, receipt, token).catch(() => {});
      throw error;
    }
    return first ? "accepted" : "duplicate";
  }

  async #addJobs(bounty: Bounty): Promise<void> {
    const { flows, seal } = this.parts;
    const keepSeconds = Math.ceil((bounty.expiresAt - Date.now()) / 1000) + 60;
    // At the scan's deadline: a live owner answers then itself; the watcher answers the others.
    const watchAt = bounty.expiresAt - this.config.ANSWER_MARGIN_MS;
    await flows.addBulk([
      {
        name: "bounty",
        queueName: this.config.QUEUE_NAME,
        data: toJobData(bounty, seal),
        opts: {
          jobId: bountyJobId(bounty),
          attempts: queueTiming.attempts,
          backoff: { type: "fixed", delay: queueTiming.retryDelayMs },
          // Kept until the bounty expires: a replay after the answer still finds it.
          removeOnComplete: { age: keepSeconds },
          removeOnFail: { age: keepSeconds },
        },
      },
      {
        name: "deadline",
        queueName: deadlineQueueName(this.config.QUEUE_NAME),
        data: toDeadlineJobData(bounty, seal),
        opts: {
          jobId: deadlineJobId(bounty),
          delay: Math.max(0, watchAt - Date.now()),
          attempts: queueTiming.attempts, // a Redis blip must not drop the safety net
          backoff: { type: "fixed", delay: 200 },
          removeOnComplete: true,
          removeOnFail: { age: keepSeconds },
        },
      },
    ]);
  }

  async drain(): Promise<void> {
    const { watcher, flows, queue, redis, backstop } = this.parts;
    this.#draining = true;
    this.#counts.stop();
    backstop.clear();
    await Promise.all([watcher.close(), closeWithin(flows.close()), closeWithin(queue.close())]);
    await quitRedis(redis);
  }
}

/** Deletes a receipt key only when it still holds this receiver's token. */
const releaseReceiptScript =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/** At shutdown, a bounty with more time left than this goes back to the queue, in ms. */
const handBackWhenLeftMs = 15_000;

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

/**
 * Queue mode, scanning side: a BullMQ Worker taking bounty jobs (WORKER_CONCURRENCY at once)
 * and answering them like `serve` alone does, through the answer ledger so that a bounty is
 * answered once with one verdict. A job whose bounty no longer validates is retried, then
 * failed for good and answered unknown; a worker that dies mid-job has its jobs taken over by
 * the others. It also watches deadlines.
 */
export async function startQueueWorker(options: {
  config: EngineConfig & { QUEUE_URL: string };
  processor: BountyProcessor;
  ledger: RedisAnswerLedger;
  seal: RedisSeal;
  metrics: EngineMetrics;
  logger: Logger;
}): Promise<QueueWorker> {
  const { config, processor, ledger, seal, metrics, logger } = options;
  // Job counts on a connection that fails fast: an outage must not pile up queued commands.
  const probe = await checkedRedisConnection(config.QUEUE_URL, "receiver", logger);
  const queue = new Queue(config.QUEUE_NAME, { connection: probe });
  queue.on("error", () => {});
  const counts = new QueueCounts(queue, metrics);
  const jobs = redisConnection(config.QUEUE_URL, "worker", logger);
  const worker = new Worker(
    config.QUEUE_NAME,
    async (job: Job) => {
      metrics.queueWaitSeconds.observe(Math.max(0, Date.now() - job.timestamp) / 1000);
      let bounty: Bounty;
      try {
        // Throws for a job that no longer validates: retried, then answered unknown.
        bounty = fromJobData(job.data, job.id, seal);
      } catch (error) {
        if (!(error instanceof ForgedJobError)) throw error;
        // Not ours: never run, retried or answered (its response_url is the forger's).
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
    },
    {
      connection: jobs,
      concurrency: config.WORKER_CONCURRENCY,
      lockDuration: queueTiming.lockMs,
      stalledInterval: queueTiming.stalledIntervalMs,
      maxStalledCount: queueTiming.maxStalledCount,
    },
  );
  worker.on("error", (error: Error) =>
    logger.warn({ error: redactUrls(error.message) }, "queue worker error (retrying)"),
  );
  worker.on("stalled", (jobId: string) => {
    metrics.queueEvents.inc({ event: "stalled" });
    logger.warn(
      { job: jobId },
      "a job stalled (its worker died or lost its lock): handed to another worker",
    );
  });
  worker.on("failed", (job: Job | undefined, error: Error) => {
    if (!job) return;
    const final =
      job.attemptsMade >= (job.opts.attempts ?? 1) || /stalled more than/.test(error.message);
    if (!final) {
      metrics.queueEvents.inc({ event: "retried" });
      return;
    }
    metrics.queueEvents.inc({ event: "dead_lettered" });
    const target = failedJobTargetOf(job.data, job.id, seal);
    logger.error(
      { job: job.id, error: redactUrls(error.message), answerable: target !== undefined },
      "a job failed for good (dead-lettered)",
    );
    if (target && Date.now() < target.expiresAt) void processor.answerUnknown(target, error);
  });
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
