import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { parseJsonWithBigInts, stringifyWithBigInts } from "./bigint-json.js";
import { type Bounty, reviveBounty } from "./bounty.js";
import {
  type BountyIntake,
  type BountyProcessor,
  type IntakeLoad,
  replayKeys,
  type SubmitOutcome,
} from "./bounty-processor.js";
import type { EngineConfig } from "./config.js";
import type { EngineMetrics } from "./metrics.js";
import { redactUrls } from "./redact.js";
import { responseUrlRefusal } from "./response-delivery.js";

/** Heartbeat of a worker: it refreshes this key; when it expires, its jobs go back to the queue. */
const heartbeatMs = 10_000;

/** A queued bounty: JSON with exact integers (bids), validated again when taken. */
function serialize(bounty: Bounty): string {
  return stringifyWithBigInts(bounty);
}

function deserialize(text: string): Bounty {
  return reviveBounty(parseJsonWithBigInts(text));
}

/**
 * Queue mode, receiving side: `serve` with QUEUE_URL answers webhooks at once and pushes the
 * accepted bounties onto a Redis list; stateless `microengine worker` processes scan them. Replay
 * protection is shared through Redis (`SET NX` until the bounty expires), so several receivers
 * behind a load balancer still answer each bounty once.
 */
export class RedisBountyQueue implements BountyIntake {
  readonly inFlight = 0;

  constructor(
    private readonly redis: Redis,
    private readonly queue: string,
    private readonly metrics: EngineMetrics,
    private readonly config: Pick<
      EngineConfig,
      "RESPONSE_ALLOWED_HOSTS" | "ARTIFACT_ALLOW_PRIVATE_ADDRESSES"
    >,
  ) {}

  responseRefusal(url: string): string | undefined {
    return responseUrlRefusal(url, {
      allowedHosts: this.config.RESPONSE_ALLOWED_HOSTS,
      allowPrivateAddresses: this.config.ARTIFACT_ALLOW_PRIVATE_ADDRESSES,
    });
  }

  load(): IntakeLoad {
    return { running: 0, concurrency: 0, waiting: 0, backlog: 0, open: 0, saturated: false };
  }

  async submit(bounty: Bounty, deliveryId?: string): Promise<SubmitOutcome> {
    const keys = replayKeys(bounty, deliveryId).filter((key): key is string => key !== undefined);
    const expiresAt = bounty.expiresAt + 60_000;
    const claims = await Promise.all(
      keys.map((key) => this.redis.set(`${this.queue}:seen:${key}`, "1", "PXAT", expiresAt, "NX")),
    );
    if (claims.some((claim) => claim !== "OK")) {
      this.metrics.bounties.inc({ phase: bounty.phase, outcome: "duplicate" });
      return "duplicate";
    }
    await this.redis.lpush(this.queue, serialize(bounty));
    return "accepted";
  }

  async drain(): Promise<void> {
    await this.redis.quit().catch(() => {});
  }
}

/**
 * Queue mode, scanning side: `concurrency` loops move bounties from the queue to this worker's
 * processing list (`BLMOVE`, so a crash loses nothing), answer them with `processor.run`, and
 * remove them. A heartbeat key marks the worker alive; at start, a worker moves the jobs of
 * workers whose heartbeat expired back to the queue. Resolves when `signal` fires and the
 * jobs in hand are answered.
 */
export async function runQueueWorkers(options: {
  url: string;
  queue: string;
  concurrency: number;
  processor: BountyProcessor;
  logger: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const { url, queue, concurrency, processor, logger, signal } = options;
  const id = randomUUID();
  const processing = `${queue}:processing:${id}`;
  const control = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  control.on("error", (error: Error) =>
    logger.warn({ err: error }, "queue connection error (retrying)"),
  );
  await control.connect();
  const beat = () => control.set(`${queue}:worker:${id}`, "1", "PX", heartbeatMs);
  await beat();
  const heartbeat = setInterval(() => void beat().catch(() => {}), heartbeatMs / 3);

  // Jobs of workers that died mid-bounty go back to the queue.
  for (const list of await control.keys(`${queue}:processing:*`)) {
    const owner = list.slice(`${queue}:processing:`.length);
    if (owner === id || (await control.exists(`${queue}:worker:${owner}`))) continue;
    let moved = 0;
    while (await control.lmove(list, queue, "RIGHT", "LEFT")) moved += 1;
    if (moved > 0)
      logger.warn({ worker: owner, moved }, "requeued the bounties of a worker that stopped");
  }

  const loop = async (): Promise<void> => {
    const connection = control.duplicate();
    connection.on("error", (error: Error) =>
      logger.warn({ err: error }, "queue connection error (retrying)"),
    );
    try {
      while (!signal.aborted) {
        const job = await connection.blmove(queue, processing, "RIGHT", "LEFT", 1);
        if (!job) continue;
        let bounty: Bounty;
        try {
          bounty = deserialize(job);
        } catch (error) {
          // Not a bounty serve queued (written by hand?): no valid response_url to answer.
          logger.error({ error: (error as Error).message }, "dropped an invalid queued job");
          await connection.lrem(processing, 1, job);
          continue;
        }
        if (Date.now() >= bounty.expiresAt)
          logger.error({ bounty: bounty.id }, "a queued bounty expired before a worker took it");
        await processor.run(bounty);
        await connection.lrem(processing, 1, job);
      }
    } finally {
      connection.disconnect();
    }
  };
  logger.info(
    { queue, concurrency, worker: id },
    `queue worker ${id} taking bounties from ${queue}`,
  );
  try {
    await Promise.all(Array.from({ length: concurrency }, loop));
  } finally {
    clearInterval(heartbeat);
    await control.del(`${queue}:worker:${id}`).catch(() => {});
    await control.quit().catch(() => {});
  }
}

/** A Redis connection for the receiving side; fails fast with a message naming QUEUE_URL. */
export async function connectQueue(url: string, logger?: Logger): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 3,
    connectTimeout: 3000,
  });
  redis.on("error", (error: Error) =>
    logger?.warn({ err: error }, "queue connection error (retrying)"),
  );
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new Error(
      redactUrls(`QUEUE_URL: cannot reach Redis at ${url}: ${(error as Error).message}`),
    );
  }
}
