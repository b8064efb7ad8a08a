import { setTimeout as sleep } from "node:timers/promises";
import type { ScanResult } from "@engine/core";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import type { ResponseDelivery } from "../net/response-delivery.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { inSpan } from "../operations/tracing.js";
import { answerBodyProblem } from "../protocol/answer-body.js";
import { computeBid } from "../protocol/bid.js";
import { stringifyWithBigInts } from "../protocol/bigint-json.js";
import { answerCoverage } from "../protocol/coverage.js";
import type { AnswerLedger } from "../queue/answer-ledger.js";
import type { AnswerTarget } from "./answer-target.js";

/** Longest the answer ledger may take to record a claim before the answer goes out anyway, in ms. */
const ledgerTimeoutMs = 2_000;

/** What an {@link AnswerPoster} sees of the processor: its config slice, metrics, ledger and delivery. */
export interface AnswerPosterContext {
  config: Pick<EngineConfig, "BID_STRATEGY">;
  metrics: Pick<EngineMetrics, "bounties" | "answeredLate" | "dropped" | "redisRejected">;
  /** Records answers around their POST (queue mode): each bounty answered once, one verdict. */
  ledger?: AnswerLedger | undefined;
  delivery: Pick<ResponseDelivery, "deliver">;
  /** Fires when the engine's shutdown stops answers retrying. */
  stop: AbortSignal;
}

/** Posts the answer of one bounty. */
export interface AnswerPosting {
  /**
   * Computes the bid and posts the answer; logs and counts, never throws.
   * @param useLedger `skip`: post without the answer ledger (Redis is away; a duplicate beats a loss). Default `use`.
   */
  post(
    target: AnswerTarget,
    result: ScanResult,
    logger: Logger,
    useLedger?: "use" | "skip",
  ): Promise<void>;
}

/** The assertion (verdict, integer bid within the rules, metadata) or the arbitration vote. */
function answerBody(
  target: AnswerTarget,
  result: ScanResult,
  strategy: EngineConfig["BID_STRATEGY"],
): object {
  if (target.phase !== "assertion") return { verdict: result.verdict, metadata: result.metadata };
  const bid = computeBid({
    verdict: result.verdict,
    confidence: result.confidence,
    strategy,
    min: target.rules?.min_allowed_bid,
    max: target.rules?.max_allowed_bid,
    favor: target.favor,
    penalize: target.penalize,
    // A test-signature engine's benign answer bids the minimum.
    coverage: answerCoverage(result.metadata),
  });
  return { verdict: result.verdict, bid, metadata: result.metadata };
}

/** The verdict of a recorded answer body (checked by answerBodyProblem before it is posted). */
function recordedVerdict(text: string): string {
  const { verdict } = JSON.parse(text) as { verdict?: unknown };
  return typeof verdict === "string" ? verdict : "unknown";
}

/**
 * Posts answers: claims each through the answer ledger (queue mode) so that a bounty is
 * answered once with one verdict, holds a recorded answer to the bounty's rules, delivers it
 * to `response_url` (Idempotency-Key `id:phase`), records it posted, and counts the outcome
 * (answered, answered late, dropped).
 */
export class AnswerPoster implements AnswerPosting {
  constructor(private readonly context: AnswerPosterContext) {}

  async post(
    target: AnswerTarget,
    result: ScanResult,
    logger: Logger,
    useLedger: "use" | "skip" = "use",
  ): Promise<void> {
    let delivered = false;
    // The verdict posted: this result's, or that of the answer another process recorded.
    let posted: { verdict: string; recorded: boolean } = {
      verdict: result.verdict,
      recorded: false,
    };
    try {
      const outcome = await this.#send(target, result, logger, useLedger);
      if (outcome === "answered already") return;
      ({ delivered, ...posted } = outcome);
    } catch (error) {
      logger.error({ err: error }, "could not build or send the answer");
    }
    const { metrics } = this.context;
    if (delivered && Date.now() <= target.expiresAt) {
      metrics.bounties.inc({ phase: target.phase, outcome: posted.verdict });
      if (posted.recorded)
        logger.info(
          { verdict: posted.verdict },
          "answered with the answer another process recorded (and could not post)",
        );
      else logger.info({ verdict: result.verdict, confidence: result.confidence }, "answered");
    } else if (delivered) {
      metrics.answeredLate.inc();
      logger.error("answered after expiration");
    } else {
      metrics.dropped.inc();
      logger.error("could not deliver the answer before expiration");
    }
  }

  /** Claims, checks and delivers the answer: whether it was accepted in time. */
  async #send(
    target: AnswerTarget,
    result: ScanResult,
    logger: Logger,
    useLedger: "use" | "skip",
  ): Promise<{ delivered: boolean; verdict: string; recorded: boolean } | "answered already"> {
    const { ledger } = this.context;
    const own = stringifyWithBigInts(answerBody(target, result, this.context.config.BID_STRATEGY));
    const claimed =
      ledger && useLedger === "use" ? await this.#claim(ledger, target, own, logger) : own;
    if (claimed === undefined) {
      logger.info("answered already by another process");
      return "answered already";
    }
    const text = this.#heldToRules(claimed, own, target, logger);
    const recorded = text !== own;
    const verdict = recorded ? recordedVerdict(text) : result.verdict;
    const delivered = await inSpan(
      "deliver",
      { "engine.bounty.id": target.id, "engine.verdict": verdict },
      async (span) => {
        const posted = await this.context.delivery.deliver({
          url: target.response_url,
          body: text,
          idempotencyKey: `${target.id}:${target.phase}`,
          expiresAt: target.expiresAt,
          stop: this.context.stop,
          logger,
        });
        span.setAttribute("engine.delivered", posted);
        return posted;
      },
    );
    // Recorded even when posted without the ledger (Redis away): nobody posts again after it.
    if (delivered && ledger) void this.#recordPosted(ledger, target, text, logger);
    return { delivered, verdict, recorded };
  }

  /**
   * The body to post: `own` when this process claims the answer first or the ledger does not
   * answer in time, the recorded body when another process claimed it, undefined when it was
   * posted already.
   */
  async #claim(
    ledger: AnswerLedger,
    target: AnswerTarget,
    own: string,
    logger: Logger,
  ): Promise<string | undefined> {
    // Recorded before the POST: a redelivered job or the deadline watcher posts this same
    // body (same verdict, same Idempotency-Key) or nothing. When Redis does not answer in
    // time, the answer still goes out (at least once beats never).
    const giveUp = new AbortController();
    const claimed = await Promise.race([
      ledger.claim(target, own).then(
        (value) => ({ value }),
        () => undefined,
      ),
      sleep(ledgerTimeoutMs, undefined, { signal: giveUp.signal }).then(
        () => undefined,
        () => undefined,
      ),
    ]);
    giveUp.abort(); // the timer goes with the race: no 2 s left pending per answer
    if (claimed) return claimed.value;
    logger.warn("the answer ledger did not answer in time: posting anyway");
    return own;
  }

  /** Whatever the ledger holds (sealed, but from another process) is held to the rules. */
  #heldToRules(text: string, own: string, target: AnswerTarget, logger: Logger): string {
    const problem = text === own ? undefined : answerBodyProblem(text, target);
    if (!problem) return text;
    this.context.metrics.redisRejected.inc({ kind: "answer" });
    logger.error({ problem }, "the recorded answer breaks the bounty's rules: posting this one");
    return own;
  }

  /**
   * Records a posted answer, retrying while Redis is away (until the bounty expires): a record
   * that never lands would let the deadline watcher post a second, different answer.
   */
  async #recordPosted(
    ledger: AnswerLedger,
    target: AnswerTarget,
    body: string,
    logger: Logger,
  ): Promise<void> {
    for (let delay = 200; Date.now() < target.expiresAt; delay = Math.min(delay * 2, 2_000)) {
      try {
        await ledger.posted(target, body);
        return;
      } catch (error) {
        logger.warn({ err: error }, "could not record the answer as posted yet (retrying)");
        await sleep(delay);
      }
    }
  }
}
