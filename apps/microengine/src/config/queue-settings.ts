import { z } from "zod";
import { integer } from "./setting-values.js";

/** Queue mode: Redis, the queue, its secret, the workers. */
export const queueSettings = z.object({
  /** Queue mode: Redis URL (redis://host:6379). serve then queues bounties; microengine worker scans them. */
  QUEUE_URL: z
    .string()
    .regex(/^rediss?:\/\//, "a redis:// or rediss:// URL")
    .optional(),
  /**
   * The BullMQ queue of bounties (its deadline jobs go to `<QUEUE_NAME>-deadlines`, its answer
   * records under `<QUEUE_NAME>:answer:`). Letters, digits, `.`, `_`, `-`. Default engine-bounties.
   */
  QUEUE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, "letters, digits, '.', '_' and '-' (BullMQ refuses ':')")
    .default("engine-bounties"),
  /**
   * Queue mode: the secret (the same for serve and every worker, at least 16 characters) under
   * which what the engine reads back from Redis is authenticated (HMAC-SHA256): queued
   * bounties, deadline jobs, answer records, cached results. Required with QUEUE_URL.
   */
  QUEUE_SECRET: z.string().min(16, "at least 16 characters (e.g. openssl rand -hex 32)").optional(),
  /**
   * Port of a queue worker's /healthz, /readyz and /metrics (on HOST); 0 picks a free one.
   * Unset: 8081, or a free port (logged) when 8081 is taken, so a second worker on the same
   * machine starts too. Set it where something probes a known port.
   */
  WORKER_PORT: integer(0, 65535).optional(),
  /** Bounties a worker handles at once. Default 4. */
  WORKER_CONCURRENCY: integer(1, 256).default(4),
});
