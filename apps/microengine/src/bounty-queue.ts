import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Bounty } from "./bounty.js";
import { type BountyIntake, type BountyProcessor, replayKeys } from "./bounty-processor.js";
import type { EngineMetrics } from "./metrics.js";

/** Heartbeat of a worker: it refreshes this key; when it expires, its jobs go back to the queue. */
const heartbeatMs = 10_000;

function serialize(bounty: Bounty): string {
  return JSON.stringify(bounty, (_key, value) => (typeof value === "bigint" ? `${value}n` : value));
}

function deserialize(text: string): Bounty {
  return JSON.parse(text, (_key, value) =>
    typeof value === "string" && /^\d+n$/.test(value) ? BigInt(value.slice(0, -1)) : value,
  ) as Bounty;
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
  ) {}

  async submit(bounty: Bounty, deliveryId?: string): Promise<"accepted" | "duplicate"> {
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
        const bounty = deserialize(job);
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
    throw new Error(`QUEUE_URL: cannot reach Redis at ${url}: ${(error as Error).message}`);
  }
}
