import type { Verdict } from "@engine/core";

/** How confidence becomes a bid between the bounty's min and max. */
export type BidStrategy = "linear" | "conservative" | "aggressive";

/** A key=value filter over a bounty (`mimetype=application/pdf`, `artifact_type=url`, any metadata key). */
export type BountyFilter = string;

/** Default bid range when a bounty gives no rules: 0.0625 to 1 NCT (in wei), as on the marketplace. */
export const defaultBidRange = { min: 62_500_000_000_000_000n, max: 1_000_000_000_000_000_000n };

const precision = 1_000_000n;

function shape(strategy: BidStrategy, confidence: number): number {
  if (strategy === "conservative") return confidence * confidence;
  if (strategy === "aggressive") return Math.sqrt(confidence);
  return confidence;
}

/** True when `filter` (`key=value`) matches the bounty's top-level fields or its metadata. */
export function matchesFilter(
  filter: BountyFilter,
  bounty: {
    mimetype?: string | null;
    artifact_type: string;
    metadata?: Record<string, unknown> | null;
  },
): boolean {
  const separator = filter.indexOf("=");
  if (separator <= 0) return false;
  const key = filter.slice(0, separator).trim();
  const expected = filter
    .slice(separator + 1)
    .trim()
    .toLowerCase();
  const fields: Record<string, unknown> = {
    mimetype: bounty.mimetype,
    artifact_type: bounty.artifact_type,
    ...(bounty.metadata ?? {}),
  };
  const actual = fields[key];
  return actual !== undefined && actual !== null && String(actual).toLowerCase() === expected;
}

/**
 * The integer bid for an assertion: `min + shape(confidence) x (max - min)`, where `shape` is
 * the strategy (linear: c, conservative: c², aggressive: √c). Favour filters raise the
 * confidence by 20 %, penalise filters lower it by 20 %; the result is always clamped to
 * `[min, max]`. `unknown` and `suspicious` bid 0, as the protocol says.
 */
export function computeBid(options: {
  verdict: Verdict;
  confidence: number;
  strategy: BidStrategy;
  min?: bigint | undefined;
  max?: bigint | undefined;
  favor?: boolean;
  penalize?: boolean;
}): bigint {
  if (options.verdict === "unknown" || options.verdict === "suspicious") return 0n;
  const min = options.min ?? defaultBidRange.min;
  const max =
    options.max ??
    (options.min !== undefined && options.min > defaultBidRange.max
      ? options.min
      : defaultBidRange.max);
  let confidence = Number.isFinite(options.confidence) ? options.confidence : 0;
  if (options.favor) confidence *= 1.2;
  if (options.penalize) confidence *= 0.8;
  confidence = Math.min(1, Math.max(0, confidence));
  const scaled = BigInt(Math.round(shape(options.strategy, confidence) * Number(precision)));
  const bid = min + ((max - min) * scaled) / precision;
  return bid < min ? min : bid > max ? max : bid;
}

/** JSON text where bigint values are written as plain JSON integers (never strings, floats or exponents). */
export function stringifyWithBigInt(value: unknown): string {
  const marker = "__bigint__";
  return JSON.stringify(value, (_key, item) =>
    typeof item === "bigint" ? `${marker}${item.toString()}${marker}` : item,
  ).replace(new RegExp(`"${marker}(-?\\d+)${marker}"`, "g"), "$1");
}
