import type { Redis } from "ioredis";
import { z } from "zod";
import type { RedisSeal } from "./redis-seal.js";

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
 * posts later posts that same body. Each record is sealed under QUEUE_SECRET with its key: a
 * record that does not verify (written by someone without the secret, or copied from another
 * bounty) is ignored as if absent, and replaced by this process's own.
 */
export class RedisAnswerLedger implements AnswerLedger {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly seal: RedisSeal,
  ) {}

  #key(key: AnswerKey): string {
    return `${this.prefix}:answer:${key.id}:${key.phase}`;
  }

  #encode(redisKey: string, entry: Entry): string {
    const value = JSON.stringify(entry);
    return JSON.stringify({ value, seal: this.seal.sign("answer", redisKey, value) });
  }

  /** The record under `redisKey` when it verifies; undefined when absent or forged. */
  async #read(redisKey: string): Promise<Entry | undefined> {
    const stored = await this.redis.get(redisKey);
    if (stored === null) return undefined;
    const envelope = envelopeSchema.safeParse(parseOrUndefined(stored));
    if (!envelope.success) {
      this.seal.verify("answer", redisKey, stored, undefined); // counted as rejected
      return undefined;
    }
    const { value, seal } = envelope.data;
    if (!this.seal.verify("answer", redisKey, value, seal)) return undefined;
    const entry = entrySchema.safeParse(parseOrUndefined(value));
    return entry.success ? entry.data : undefined;
  }

  async claim(key: AnswerKey, body: string): Promise<string | undefined> {
    const redisKey = this.#key(key);
    const until = String(key.expiresAt + 60_000);
    const mine = this.#encode(redisKey, { state: "posting", body });
    const set = await this.redis.set(redisKey, mine, "PXAT", until, "NX");
    if (set === "OK") return body;
    const previous = await this.#read(redisKey);
    if (!previous) {
      // Expired meanwhile, or a record that does not verify: this process's claim stands.
      await this.redis.set(redisKey, mine, "PXAT", until);
      return body;
    }
    return previous.state === "posted" ? undefined : previous.body;
  }

  async posted(key: AnswerKey, body: string): Promise<void> {
    const redisKey = this.#key(key);
    await this.redis.set(
      redisKey,
      this.#encode(redisKey, { state: "posted", body }),
      "PXAT",
      String(key.expiresAt + 60_000),
    );
  }

  async isPosted(key: AnswerKey): Promise<boolean> {
    return (await this.#read(this.#key(key)))?.state === "posted";
  }
}

const envelopeSchema = z.object({ value: z.string(), seal: z.string() });
const entrySchema = z.object({ state: z.enum(["posting", "posted"]), body: z.string() });

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
