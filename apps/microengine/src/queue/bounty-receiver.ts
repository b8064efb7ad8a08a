import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { FlowProducer, Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";

/** The settings the receiving side reads. */
export type ReceiverConfig = Pick<
  EngineConfig,
  | "QUEUE_NAME"
  | "BOUNTY_BACKLOG"
  | "ANSWER_MARGIN_MS"
  | "RESPONSE_ALLOWED_HOSTS"
  | "ARTIFACT_ALLOW_PRIVATE_ADDRESSES"
> & { QUEUE_URL: string };

import type { QueueReadiness } from "../http/readiness-body.js";
import type { BountyIntake, IntakeLoad, SubmitOutcome } from "../intake/bounty-intake.js";
import type { BountyProcessor } from "../intake/bounty-processor.js";
import { responseUrlRefusal } from "../net/response-delivery.js";
import { closeWithin } from "../operations/bounded-close.js";
import { loggableMessage } from "../operations/error-message.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { Bounty } from "../protocol/bounty.js";
import { AcceptedBackstop } from "./accepted-backstop.js";
import type { RedisAnswerLedger } from "./answer-ledger.js";
import { startDeadlineWatcher } from "./deadline-watcher.js";
import { bountyJobId, deadlineJobId, toDeadlineJobData, toJobData } from "./job-data.js";
import { QueueCounts } from "./queue-counts.js";
import { deadlineQueueName, queueTiming } from "./queue-timing.js";
import { checkedRedisConnection, quitRedis } from "./redis-connections.js";
import type { RedisSeal } from "./redis-seal.js";

/** `/readyz`'s queue warning while jobs wait and no worker is connected. */
export const noWorkerWarning =
  "jobs are waiting and no worker is connected: start microengine worker (same QUEUE_URL, QUEUE_NAME and QUEUE_SECRET); serve stays ready meanwhile";

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
    private readonly config: ReceiverConfig,
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
    this.#counts = new QueueCounts(parts.queue, parts.metrics, { countWorkers: true });
  }

  /** Connects (failing fast with a message naming QUEUE_URL) and starts the deadline watcher. */
  static async open(options: {
    config: ReceiverConfig;
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
      logger.warn({ error: loggableMessage(error) }, "queue error"),
    );
    flows.on("error", (error: Error) =>
      logger.warn({ error: loggableMessage(error) }, "queue error"),
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

  /**
   * Whether Redis answers a PING within a second, the job counts by state, the workers
   * connected, and a warning while jobs wait with no worker. Readiness does not fail on it:
   * a deployment that scales workers to zero needs serve to keep accepting.
   */
  async queueState(): Promise<QueueReadiness> {
    const ok = await Promise.race([
      this.parts.redis.ping().then(
        () => true,
        () => false,
      ),
      sleep(1_000).then(() => false),
    ]);
    const { counts: jobs, workers } = this.#counts;
    const idle = workers === 0 && (jobs.waiting ?? 0) + (jobs.delayed ?? 0) > 0;
    return {
      ok,
      jobs,
      ...(workers === undefined ? {} : { workers }),
      ...(idle ? { warning: noWorkerWarning } : {}),
    };
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
