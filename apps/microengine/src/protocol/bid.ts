import type { Verdict } from "@engine/core";
import type { SignatureCoverage } from "./coverage.js";

/** How confidence becomes a bid between the bounty's min and max. */
export type BidStrategy = "linear" | "conservative" | "aggressive";

/** Default bid range when a bounty gives no rules: 0.0625 to 1 NCT (in wei), as on the marketplace. */
export const defaultBidRange = { min: 62_500_000_000_000_000n, max: 1_000_000_000_000_000_000n };

const precision = 1_000_000n;

function shape(strategy: BidStrategy, confidence: number): number {
  if (strategy === "conservative") return confidence * confidence;
  if (strategy === "aggressive") return Math.sqrt(confidence);
  return confidence;
}

/**
 * The range a bid must lie in: the bounty's rules, a missing side being the marketplace
 * default, moved so that the range stays within the side that is given (max only, below the
 * default min: the bid is at most that max).
 */
export function allowedBidRange(
  ruleMin: bigint | undefined,
  ruleMax: bigint | undefined,
): { min: bigint; max: bigint } {
  const max =
    ruleMax ??
    (ruleMin !== undefined && ruleMin > defaultBidRange.max ? ruleMin : defaultBidRange.max);
  const min = ruleMin ?? (defaultBidRange.min < max ? defaultBidRange.min : max);
  return { min, max };
}

/**
 * The integer bid for an assertion: `min + shape(confidence) x (max - min)`, where `shape` is
 * the strategy (linear: c, conservative: c², aggressive: √c). Favour filters raise the
 * confidence by 20 %, penalise filters lower it by 20 %; the result is always clamped to
 * `[min, max]`, which always lies within the rules given (a max alone is never exceeded).
 * `unknown` and `suspicious` bid 0, as the protocol says. A `benign` answer of an engine with
 * test signatures only (`coverage: "test-signatures"`) bids the minimum whatever its confidence
 * and filters: not finding a test sample says nothing about real malware. Its `malicious`
 * answers (EICAR, test samples) keep their bid: a test-signature match is as certain as any.
 */
export function computeBid(options: {
  verdict: Verdict;
  confidence: number;
  strategy: BidStrategy;
  min?: bigint | undefined;
  max?: bigint | undefined;
  favor?: boolean;
  penalize?: boolean;
  /** What the engine's signatures cover (the answer's `metadata.coverage`); unstated: as `signatures`. */
  coverage?: SignatureCoverage | undefined;
}): bigint {
  if (options.verdict === "unknown" || options.verdict === "suspicious") return 0n;
  const { min, max } = allowedBidRange(options.min, options.max);
  if (options.verdict === "benign" && options.coverage === "test-signatures") return min;
  let confidence = Number.isFinite(options.confidence) ? options.confidence : 0;
  if (options.favor) confidence *= 1.2;
  if (options.penalize) confidence *= 0.8;
  confidence = Math.min(1, Math.max(0, confidence));
  const scaled = BigInt(Math.round(shape(options.strategy, confidence) * Number(precision)));
  const bid = min + ((max - min) * scaled) / precision;
  return bid < min ? min : bid > max ? max : bid;
}
