import type { Verdict } from "@engine/core";
import type { RawMatch } from "./yara-worker-protocol.js";

/** How matches become a verdict; see {@link verdictFromMatches}. */
export interface MatchVerdictOptions {
  /** `score` meta at or above this is malicious, below it suspicious. Default 70. */
  maliciousScore: number;
  /** Tags that make a match suspicious instead of malicious. Default `suspicious`, `hunting`, `heuristic`. */
  suspiciousTags: string[];
  /** Confidence of a malicious match without `confidence`/`score` meta. Default 1. */
  maliciousConfidence: number;
  /** Confidence of a suspicious match without `confidence`/`score` meta. Default 0.5. */
  suspiciousConfidence: number;
}

/** One match as it appears in the metadata (`metadata.yara.matches`). */
export interface MatchSummary {
  namespace: string;
  rule: string;
  tags: string[];
  verdict: Extract<Verdict, "malicious" | "suspicious">;
  confidence: number;
  family: string;
  meta: Record<string, string | number | boolean>;
}

const familyKeys = ["malware_family", "family", "threat_name"] as const;
const keptMetaKeys = [
  "description",
  "author",
  "reference",
  "date",
  "score",
  "severity",
  "verdict",
  "confidence",
  ...familyKeys,
];

function confidenceFrom(value: unknown): number | undefined {
  const number = typeof value === "string" ? Number(value) : value;
  if (typeof number !== "number" || !Number.isFinite(number) || number < 0) return undefined;
  return number <= 1 ? number : Math.min(number / 100, 1);
}

/**
 * Reads one match by the rule-meta conventions:
 * - family: meta `malware_family`, else `family`, else `threat_name`, else the rule name;
 * - verdict: meta `verdict` (`malicious` or `suspicious`) wins; else a numeric `score` meta
 *   (0-100, signature-base style) is malicious at or above `maliciousScore`, suspicious below;
 *   else a tag in `suspiciousTags` makes it suspicious; else malicious;
 * - confidence: meta `confidence` (0-1, or 0-100), else `score`/100, else the default of the verdict.
 */
export function summarizeMatch(match: RawMatch, options: MatchVerdictOptions): MatchSummary {
  const meta = match.metadata;
  const family = familyKeys
    .map((key) => meta[key])
    .find((value) => typeof value === "string" && value.length > 0);
  const score = confidenceFrom(meta.score);
  const declared = typeof meta.verdict === "string" ? meta.verdict.toLowerCase() : undefined;
  const suspiciousByTag = match.tags.some((tag) =>
    options.suspiciousTags.includes(tag.toLowerCase()),
  );
  const verdict: MatchSummary["verdict"] =
    declared === "malicious" || declared === "suspicious"
      ? declared
      : score !== undefined
        ? score * 100 >= options.maliciousScore
          ? "malicious"
          : "suspicious"
        : suspiciousByTag
          ? "suspicious"
          : "malicious";
  const confidence =
    confidenceFrom(meta.confidence) ??
    score ??
    (verdict === "malicious" ? options.maliciousConfidence : options.suspiciousConfidence);
  return {
    namespace: match.namespace,
    rule: match.identifier,
    tags: match.tags,
    verdict,
    confidence,
    family: (family as string | undefined) ?? match.identifier,
    meta: Object.fromEntries(
      keptMetaKeys
        .filter((key) => key in meta)
        .map((key) => [key, meta[key] as string | number | boolean]),
    ),
  };
}

/**
 * The verdict of a set of matches: `benign` with none; `malicious` when any match is
 * malicious, with the family and confidence of the most confident malicious match (ties: the
 * first); otherwise `suspicious`, likewise.
 */
export function verdictFromMatches(
  matches: RawMatch[],
  options: MatchVerdictOptions,
): { verdict: Verdict; confidence: number; family: string; summaries: MatchSummary[] } {
  const summaries = matches.map((match) => summarizeMatch(match, options));
  if (summaries.length === 0) return { verdict: "benign", confidence: 1, family: "", summaries };
  const malicious = summaries.filter((summary) => summary.verdict === "malicious");
  const pool = malicious.length > 0 ? malicious : summaries;
  const best = pool.reduce((winner, candidate) =>
    candidate.confidence > winner.confidence ? candidate : winner,
  );
  return { verdict: best.verdict, confidence: best.confidence, family: best.family, summaries };
}
