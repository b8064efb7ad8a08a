import { any, majority, quorum, type VerdictPolicy, weighted } from "@engine/multi";

/** VERDICT_POLICY as the config holds it: the text (logs, cache key) and the policy it names. */
export interface VerdictPolicySetting {
  text: string;
  policy: VerdictPolicy;
}

/**
 * Parses VERDICT_POLICY: `any`, `majority`, `quorum:N` (N >= 1), or
 * `weighted:name=weight,...:threshold` (weights >= 0, threshold > 0). Throws an Error saying
 * what is wrong; nothing falls back to another policy.
 */
export function parseVerdictPolicy(text: string): VerdictPolicy {
  const [kind, first, second, ...rest] = text.split(":");
  if (rest.length > 0) throw new Error("too many ':' parts");
  if (kind === "any" && first === undefined) return any;
  if (kind === "majority" && first === undefined) return majority;
  if (kind === "quorum" && second === undefined) {
    const count = Number(first);
    if (!Number.isInteger(count) || count < 1) throw new Error("quorum:N needs a whole N >= 1");
    return quorum(count);
  }
  if (kind === "weighted" && second !== undefined) {
    const pairs = (first ?? "").split(",").filter(Boolean);
    if (pairs.length === 0) throw new Error("weighted: name at least one backend=weight");
    const weights: Record<string, number> = {};
    for (const pair of pairs) {
      const [name, weight, extra] = pair.split("=");
      if (!name || weight === undefined || extra !== undefined || !(Number(weight) >= 0))
        throw new Error(`weighted: ${JSON.stringify(pair)} is not backend=weight (weight >= 0)`);
      if (Object.hasOwn(weights, name)) throw new Error(`weighted: ${name} is given twice`);
      weights[name] = Number(weight);
    }
    const threshold = Number(second);
    if (!(threshold > 0)) throw new Error("weighted: the threshold must be a number above 0");
    return weighted(weights, threshold);
  }
  throw new Error("use any, majority, quorum:N or weighted:clamav=2,yara=1:2");
}
