import { createHmac, timingSafeEqual } from "node:crypto";
import { ConfigError, type EngineConfig } from "../config/config.js";
import type { EngineMetrics } from "../operations/metrics.js";

/** What a seal is for: a seal made for one never opens another. */
export type SealPurpose = "bounty-job" | "deadline-job" | "answer" | "result";

/** The shortest QUEUE_SECRET accepted, in characters. */
export const minimumQueueSecretLength = 16;

const sealPattern = /^[0-9a-f]{64}$/;

/**
 * Authenticates what the engine keeps in Redis and reads back (queued bounties with their
 * `response_url`, deadline jobs, answer records, cached results): an HMAC-SHA256 under
 * QUEUE_SECRET over the purpose, the Redis key or job id the value lives under, and the value.
 * Whoever can write to Redis but does not hold the secret can delete or delay work, never
 * choose an answer: a value that does not verify is ignored (and counted), and a value copied
 * under another key or for another purpose does not verify either.
 */
export class RedisSeal {
  readonly #key: Buffer;
  readonly #onRejected: ((purpose: SealPurpose) => void) | undefined;

  /**
   * @param secret QUEUE_SECRET (at least {@link minimumQueueSecretLength} characters)
   * @param onRejected called for each value that did not verify (metrics, logs)
   */
  constructor(secret: string, onRejected?: (purpose: SealPurpose) => void) {
    this.#key = Buffer.from(secret, "utf8");
    this.#onRejected = onRejected;
  }

  /** The seal of `value` stored under `key` for `purpose` (64 hex digits). */
  sign(purpose: SealPurpose, key: string, value: string): string {
    return createHmac("sha256", this.#key)
      .update(`${purpose}\u0000${key}\u0000`)
      .update(value)
      .digest("hex");
  }

  /** True when `seal` is {@link RedisSeal.sign}'s for these; counts a rejection otherwise. */
  verify(purpose: SealPurpose, key: string, value: string, seal: unknown): boolean {
    const valid =
      typeof seal === "string" &&
      sealPattern.test(seal) &&
      timingSafeEqual(Buffer.from(seal, "hex"), Buffer.from(this.sign(purpose, key, value), "hex"));
    if (!valid) this.#onRejected?.(purpose);
    return valid;
  }
}

/**
 * The seal of queue mode, from QUEUE_SECRET, counting rejections in
 * `engine_redis_entries_rejected_total{kind}`. Throws ConfigError without one: in queue mode,
 * Redis is a boundary.
 */
export function queueSeal(config: EngineConfig, metrics?: EngineMetrics): RedisSeal {
  if (!config.QUEUE_SECRET)
    throw new ConfigError([
      `QUEUE_SECRET: required in queue mode (QUEUE_URL): the same random secret of at least ${minimumQueueSecretLength} characters for serve and every worker (e.g. openssl rand -hex 32); what is read back from Redis is authenticated with it`,
    ]);
  return new RedisSeal(config.QUEUE_SECRET, (purpose) =>
    metrics?.redisRejected.inc({ kind: purpose }),
  );
}
