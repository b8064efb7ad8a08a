import { ScanTimeoutError } from "@engine/core";
import type { Logger } from "pino";
import type { BountyProcessor } from "../intake/bounty-processor.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { Bounty } from "../protocol/bounty.js";
import type { UnscannedTarget } from "./job-data.js";

/** Accepted bounties `serve` keeps a backstop for at most (about 300 bytes each). */
export const maximumBackstops = 100_000;

/** Longest a backstop waits for Redis to say whether the answer went out, in ms. */
const redisCheckTimeoutMs = 500;

/**
 * `serve`'s own safety net in queue mode: the deadline jobs that answer bounties nobody
 * answered live in Redis, so a Redis outage longer than a bounty's remaining time would lose
 * every accepted bounty still queued there. Each accepted bounty is kept in memory (its answer
 * target only) until just before it expires: at `expiresAt - ANSWER_MARGIN_MS / 2` (after the
 * deadline watcher's turn), if Redis cannot say that it was answered, it is answered `unknown`
 * from here, without the ledger when Redis is away (a duplicate beats a loss; the marketplace
 * gets the same Idempotency-Key), through it when Redis is back (which then posts nothing when
 * a worker answered already). Timers are plain and held; at most {@link maximumBackstops}.
 */
export class AcceptedBackstop {
  readonly #pending = new Map<string, NodeJS.Timeout>();
  #cleared = false;

  constructor(
    private readonly options: {
      processor: BountyProcessor;
      /** True when Redis says the bounty's answer was posted; rejects when Redis is away. */
      isPosted(target: UnscannedTarget): Promise<boolean>;
      marginMs: number;
      metrics: EngineMetrics;
      logger: Logger;
    },
  ) {}

  /** True when one more bounty can be kept (the webhook answers 503 otherwise). */
  get hasRoom(): boolean {
    return this.#pending.size < maximumBackstops;
  }

  /** Keeps `bounty` until its backstop time (once per bounty and phase; never after `clear`). */
  keep(bounty: Bounty, key: string): void {
    if (this.#cleared || this.#pending.has(key) || !this.hasRoom) return;
    const target: UnscannedTarget = {
      id: bounty.id,
      phase: bounty.phase,
      response_url: bounty.response_url,
      expiresAt: bounty.expiresAt,
      rules: bounty.rules ?? undefined,
    };
    const at = bounty.expiresAt - Math.floor(this.options.marginMs / 2);
    const timer = setTimeout(
      () => {
        this.#pending.delete(key);
        void this.#fire(target);
      },
      Math.max(0, at - Date.now()),
    );
    this.#pending.set(key, timer);
  }

  /** Forgets every kept bounty (shutdown). */
  clear(): void {
    this.#cleared = true;
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
  }

  async #fire(target: UnscannedTarget): Promise<void> {
    const { processor, metrics, logger } = this.options;
    let timer: NodeJS.Timeout | undefined;
    const redisAnswer = await Promise.race([
      this.options.isPosted(target).then(
        (posted) => (posted ? "posted" : "not posted"),
        () => "away" as const,
      ),
      new Promise<"away">((resolve) => {
        timer = setTimeout(() => resolve("away"), redisCheckTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (redisAnswer === "posted") return;
    metrics.queueEvents.inc({ event: "answered_by_backstop" });
    logger.warn(
      { bounty: target.id, phase: target.phase, redis: redisAnswer },
      redisAnswer === "away"
        ? "Redis is away at the bounty's last moment: answering unknown from serve (a worker may have answered too)"
        : "nobody posted an answer before the bounty's last moment: serve posts the one a worker recorded, else unknown",
    );
    await processor.answerUnknown(
      target,
      new ScanTimeoutError({
        message: "@engine/microengine: no worker answered the bounty in time",
        publicMessage: "no worker answered in time",
      }),
      { ledger: redisAnswer === "away" ? "skip" : "use" },
    );
  }
}
