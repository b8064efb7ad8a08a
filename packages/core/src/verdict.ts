import { z } from "zod";

/**
 * The four verdicts of the PolySwarm webhook protocol.
 * - `malicious`: the engine asserts the artifact is malware.
 * - `benign`: the engine scanned it whole and found nothing.
 * - `suspicious`: something matched, but not enough to assert (heuristics, low-score rules).
 * - `unknown`: no opinion (skipped, too large, encrypted, or the backend failed).
 */
export const verdictSchema = z.enum(["malicious", "benign", "suspicious", "unknown"]);

/** One of `"malicious" | "benign" | "suspicious" | "unknown"`. See {@link verdictSchema}. */
export type Verdict = z.infer<typeof verdictSchema>;

/** Every verdict, in the order above. */
export const verdicts: readonly Verdict[] = verdictSchema.options;
