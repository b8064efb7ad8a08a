import type { Verdict } from "@engine/core";
import { answered, type BackendOutcome } from "./backend-outcome.js";

/**
 * Turns the backends' outcomes into one verdict and confidence. Policies only see what the
 * backends said; the multi-engine applies the fail-closed rules on top of any policy (a
 * failure never lets `benign` through, all failures throw).
 */
export type VerdictPolicy = (outcomes: readonly BackendOutcome[]) => {
  verdict: Verdict;
  confidence: number;
};

const count = (outcomes: readonly BackendOutcome[], verdict: Verdict): number =>
  answered(outcomes).filter((outcome) => outcome.result.verdict === verdict).length;

const maximumConfidence = (outcomes: readonly BackendOutcome[], verdict: Verdict): number =>
  Math.max(
    0,
    ...answered(outcomes)
      .filter((outcome) => outcome.result.verdict === verdict)
      .map((outcome) => outcome.result.confidence),
  );

/** Backends that gave an opinion (answered, and not `unknown`). */
const voters = (outcomes: readonly BackendOutcome[]) =>
  answered(outcomes).filter((outcome) => outcome.result.verdict !== "unknown");

/**
 * The tutorial's rule: any `malicious` -> malicious (the highest malicious confidence); else any
 * `suspicious` -> suspicious; else any `benign` -> benign (the lowest benign confidence); else
 * `unknown`.
 *
 * | answers | verdict |
 * | --- | --- |
 * | malicious, benign | malicious |
 * | suspicious, benign | suspicious |
 * | benign, benign | benign |
 * | benign, unknown | benign |
 * | unknown, unknown | unknown |
 */
export const any: VerdictPolicy = (outcomes) => {
  if (count(outcomes, "malicious") > 0)
    return { verdict: "malicious", confidence: maximumConfidence(outcomes, "malicious") };
  if (count(outcomes, "suspicious") > 0)
    return { verdict: "suspicious", confidence: maximumConfidence(outcomes, "suspicious") };
  const benign = answered(outcomes).filter((outcome) => outcome.result.verdict === "benign");
  if (benign.length > 0)
    return {
      verdict: "benign",
      confidence: Math.min(...benign.map((outcome) => outcome.result.confidence)),
    };
  return { verdict: "unknown", confidence: 0 };
};

/**
 * At least `minimum` backends must detect: `minimum` malicious -> malicious; `minimum`
 * malicious-or-suspicious -> suspicious; otherwise benign when any backend gave an opinion,
 * else unknown. Confidence is the share of voters that agree.
 *
 * | quorum(2) of | verdict |
 * | --- | --- |
 * | malicious, malicious, benign | malicious (2/3) |
 * | malicious, suspicious, benign | suspicious (2/3) |
 * | malicious, benign, benign | benign (2/3) |
 * | unknown, unknown | unknown |
 */
export function quorum(minimum: number): VerdictPolicy {
  if (!Number.isInteger(minimum) || minimum < 1)
    throw new RangeError("quorum(minimum) needs a whole number >= 1");
  return (outcomes) => {
    const total = voters(outcomes).length;
    if (total === 0) return { verdict: "unknown", confidence: 0 };
    const malicious = count(outcomes, "malicious");
    const detecting = malicious + count(outcomes, "suspicious");
    if (malicious >= minimum) return { verdict: "malicious", confidence: malicious / total };
    if (detecting >= minimum) return { verdict: "suspicious", confidence: detecting / total };
    return { verdict: "benign", confidence: count(outcomes, "benign") / total };
  };
}

/**
 * More than half of the backends that gave an opinion: malicious, else malicious-or-suspicious
 * (-> suspicious), else benign; a tie or no opinion is unknown. Confidence is the agreeing share.
 *
 * | answers | verdict |
 * | --- | --- |
 * | malicious, malicious, benign | malicious (2/3) |
 * | malicious, suspicious, benign | suspicious (2/3) |
 * | malicious, benign | unknown (tie) |
 * | benign, benign, malicious | benign (2/3) |
 */
export const majority: VerdictPolicy = (outcomes) => {
  const total = voters(outcomes).length;
  const malicious = count(outcomes, "malicious");
  const detecting = malicious + count(outcomes, "suspicious");
  const benign = count(outcomes, "benign");
  if (malicious * 2 > total) return { verdict: "malicious", confidence: malicious / total };
  if (detecting * 2 > total) return { verdict: "suspicious", confidence: detecting / total };
  if (benign * 2 > total) return { verdict: "benign", confidence: benign / total };
  return { verdict: "unknown", confidence: 0 };
};

/**
 * Weighted score: each backend adds `weight x confidence` when malicious, half of that when
 * suspicious (unlisted backends weigh 1). At or above `threshold` -> malicious; above 0 ->
 * suspicious; 0 with opinions -> benign; no opinion -> unknown. Confidence: the score over the
 * voters' total weight (malicious, suspicious) or the benign voters' share of weight.
 *
 * | weighted({ clamav: 2, yara: 1 }, 2) of | verdict |
 * | --- | --- |
 * | clamav malicious (1.0), yara benign | malicious |
 * | clamav benign, yara malicious (1.0) | suspicious (score 1 < 2) |
 * | clamav suspicious (1.0), yara malicious (1.0) | malicious (score 2) |
 * | clamav benign, yara benign | benign |
 */
export function weighted(
  weights: Readonly<Record<string, number>>,
  threshold: number,
): VerdictPolicy {
  if (!(threshold > 0))
    throw new RangeError("weighted(weights, threshold) needs a threshold above 0");
  for (const [name, weight] of Object.entries(weights)) {
    if (!(weight >= 0))
      throw new RangeError(`weighted: the weight of ${name} must be a number >= 0`);
  }
  // Own keys only: a backend named "constructor" or "toString" must not weigh a function.
  const weightOf = (name: string): number =>
    Object.hasOwn(weights, name) ? (weights[name] as number) : 1;
  return (outcomes) => {
    const opinionated = voters(outcomes);
    if (opinionated.length === 0) return { verdict: "unknown", confidence: 0 };
    const totalWeight = opinionated.reduce((sum, outcome) => sum + weightOf(outcome.name), 0);
    const score = opinionated.reduce((sum, outcome) => {
      const factor =
        outcome.result.verdict === "malicious"
          ? 1
          : outcome.result.verdict === "suspicious"
            ? 0.5
            : 0;
      return sum + weightOf(outcome.name) * outcome.result.confidence * factor;
    }, 0);
    const share = totalWeight > 0 ? Math.min(1, score / totalWeight) : 0;
    if (score >= threshold) return { verdict: "malicious", confidence: share };
    if (score > 0) return { verdict: "suspicious", confidence: share };
    const benignWeight = opinionated
      .filter((outcome) => outcome.result.verdict === "benign")
      .reduce((sum, outcome) => sum + weightOf(outcome.name), 0);
    return { verdict: "benign", confidence: totalWeight > 0 ? benignWeight / totalWeight : 0 };
  };
}

/** The policies by name, for configuration strings (`VERDICT_POLICY=majority`). */
export const namedPolicies: Readonly<Record<"any" | "majority", VerdictPolicy>> = { any, majority };
