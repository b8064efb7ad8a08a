import { any, majority, quorum, type VerdictPolicy, weighted } from "@engine/multi";

/** A backend's name, as scanners are named (letters, digits, dot, dash, underscore). */
const backendName = /^[a-z0-9][a-z0-9._-]*$/i;

/** VERDICT_POLICY as the config holds it: the text (logs, cache key) and the policy it names. */
export interface VerdictPolicySetting {
  text: string;
  policy: VerdictPolicy;
}

/**
 * What VERDICT_POLICY says about the backends, checked against those that run: the names
 * `weighted:` gives a weight (each must run, or its weight would never count) and the N of
 * `quorum:N` (at most the number of backends, or nothing could ever reach it). Returns the
 * problem, or undefined.
 */
export function policyMismatch(text: string, running: readonly string[]): string | undefined {
  const [kind, first] = text.split(":");
  if (kind === "quorum" && Number(first) > running.length)
    return `quorum:${first} needs more backends than run (${running.join(", ")})`;
  if (kind === "weighted") {
    const unknown = (first ?? "")
      .split(",")
      .map((pair) => pair.split("=")[0] ?? "")
      .filter((name) => name && !running.includes(name));
    if (unknown.length > 0)
      return `weighted: ${unknown.join(", ")} ${unknown.length === 1 ? "is" : "are"} not running (running: ${running.join(", ")})`;
  }
  return undefined;
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
    const count = first === undefined || first.trim() === "" ? Number.NaN : Number(first);
    if (!Number.isInteger(count) || count < 1) throw new Error("quorum:N needs a whole N >= 1");
    return quorum(count);
  }
  if (kind === "weighted" && second !== undefined) {
    const pairs = (first ?? "").split(",").filter(Boolean);
    if (pairs.length === 0) throw new Error("weighted: name at least one backend=weight");
    const weights: Record<string, number> = Object.create(null);
    for (const pair of pairs) {
      const [name, weight, extra] = pair.split("=");
      // A backend's name (no `__proto__`), and a finite weight written out (`clamav=` is not 0).
      if (
        !name ||
        !backendName.test(name) ||
        weight === undefined ||
        weight.trim() === "" ||
        extra !== undefined ||
        !Number.isFinite(Number(weight)) ||
        Number(weight) < 0
      )
        throw new Error(
          `weighted: ${JSON.stringify(pair)} is not backend=weight (a finite weight >= 0)`,
        );
      if (Object.hasOwn(weights, name)) throw new Error(`weighted: ${name} is given twice`);
      weights[name] = Number(weight);
    }
    const threshold = second.trim() === "" ? Number.NaN : Number(second);
    if (!Number.isFinite(threshold) || threshold <= 0)
      throw new Error("weighted: the threshold must be a finite number above 0");
    return weighted(weights, threshold);
  }
  throw new Error("use any, majority, quorum:N or weighted:clamav=2,yara=1:2");
}
