import type { Redis } from "ioredis";

/** Which bounty and phase an answer is for, and until when it matters. */
export interface AnswerKey {
  id: string;
  phase: string;
  expiresAt: number;
}

/**
 * Where answers are recorded around their POST, so that a bounty and phase is answered once
 * with one verdict even when several processes could answer it (queue workers, the deadline
 * watcher, a redelivered job).
 */
export interface AnswerLedger {
  /**
   * Claims the answer before it is posted. Returns the body to post: `body` when this caller
   * is the first; the recorded body when another process claimed it but has not recorded the
   * POST as done (it crashed mid-POST, or is still posting: the same body, verdict and
   * Idempotency-Key go out again); `undefined` when the answer was posted already.
   */
  claim(key: AnswerKey, body: string): Promise<string | undefined>;
  /**
   * Records that `body` was accepted by the marketplace, whether or not the claim got through
   * (Redis may have been away when it was made): from then on nobody posts another answer.
   */
  posted(key: AnswerKey, body: string): Promise<void>;
  /** True when the answer was posted and accepted. */
  isPosted(key: AnswerKey): Promise<boolean>;
}

interface Entry {
  state: "posting" | "posted";
  body: string;
}

/**
 * The answer ledger on Redis: one key per bounty and phase, set with NX before the POST and
 * kept until a minute after the bounty expires. The first claim fixes the verdict: whoever
 * posts later posts that same body.
 */
export class RedisAnswerLedger implements AnswerLedger {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  #key(key: AnswerKey): string {
    return `${this.prefix}:answer:${key.id}:${key.phase}`;
  }

  async claim(key: AnswerKey, body: string): Promise<string | undefined> {
    const entry: Entry = { state: "posting", body };
    const until = String(key.expiresAt + 60_000);
    const set = await this.redis.set(this.#key(key), JSON.stringify(entry), "PXAT", until, "NX");
    if (set === "OK") return body;
    const recorded = await this.redis.get(this.#key(key));
    if (!recorded) return undefined; // expired meanwhile: the bounty is over
    const previous = JSON.parse(recorded) as Entry;
    return previous.state === "posted" ? undefined : previous.body;
  }

  async posted(key: AnswerKey, body: string): Promise<void> {
    const entry: Entry = { state: "posted", body };
    await this.redis.set(
      this.#key(key),
      JSON.stringify(entry),
      "PXAT",
      String(key.expiresAt + 60_000),
    );
  }

  async isPosted(key: AnswerKey): Promise<boolean> {
    const recorded = await this.redis.get(this.#key(key));
    return recorded !== null && (JSON.parse(recorded) as Entry).state === "posted";
  }
}
