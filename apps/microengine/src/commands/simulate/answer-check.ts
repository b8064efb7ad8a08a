import type { Offered, ReceivedAnswer } from "./local-marketplace.js";

/** What an answer is checked against. */
export interface AnswerExpectation {
  phase: "assertion" | "arbitration";
  /** The verdict the artifact must get, when known. */
  expected: Offered["expected"];
  /** When the bounty was posted and when it expired, in ms since the epoch. */
  sentAt: number;
  expiresAt: number;
  minBid: bigint;
  maxBid: bigint;
}

/** What the check of one answer found. */
export interface AnswerCheck {
  latencyMs: number;
  verdict: string;
  /** The bid as written, when it is a JSON integer (assertions only). */
  bid?: string;
  problems: string[];
}

/**
 * Checks an answer: before expiration, JSON, a valid verdict (the expected one when known),
 * `metadata.malware_family`, and in the assertion phase an integer bid within the rules (0
 * for unknown and suspicious); an arbitration vote carries no bid.
 */
export function checkAnswer(answer: ReceivedAnswer, expectation: AnswerExpectation): AnswerCheck {
  const problems: string[] = [];
  const latencyMs = answer.at - expectation.sentAt;
  if (answer.at > expectation.expiresAt)
    problems.push(`answered ${answer.at - expectation.expiresAt} ms after expiration`);
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    problems.push("the answer is not JSON");
  }
  const verdict = parsed.verdict;
  if (!["malicious", "benign", "suspicious", "unknown"].includes(String(verdict)))
    problems.push(`invalid verdict ${JSON.stringify(verdict)}`);
  if (typeof (parsed.metadata as Record<string, unknown> | undefined)?.malware_family !== "string")
    problems.push("metadata.malware_family is missing");
  if (expectation.expected && verdict !== expectation.expected)
    problems.push(`expected ${expectation.expected}, got ${String(verdict)}`);
  const check: AnswerCheck = { latencyMs, verdict: String(verdict), problems };
  if (expectation.phase === "assertion") {
    const bid = checkBid(answer.body, verdict, expectation, problems);
    if (bid !== undefined) check.bid = bid;
  } else if ("bid" in parsed) {
    problems.push("an arbitration vote must not carry a bid");
  }
  return check;
}

/**
 * The bid as written in `body` when it is a JSON integer, pushing to `problems` what is wrong
 * with it: not an integer, not 0 for unknown or suspicious, outside the rules' range.
 */
function checkBid(
  body: string,
  verdict: unknown,
  rules: Pick<AnswerExpectation, "minBid" | "maxBid">,
  problems: string[],
): string | undefined {
  const literal = /"bid"\s*:\s*(-?[0-9][0-9.eE+-]*)\s*[,}]/.exec(body)?.[1];
  if (!literal || !/^\d+$/.test(literal)) {
    problems.push(`the bid is not a JSON integer: ${literal ?? "missing"}`);
    return undefined;
  }
  const bid = BigInt(literal);
  const zero = verdict === "unknown" || verdict === "suspicious";
  if (zero && bid !== 0n) problems.push(`a ${String(verdict)} answer must bid 0, bid ${literal}`);
  if (!zero && (bid < rules.minBid || bid > rules.maxBid))
    problems.push(`bid ${literal} outside [${rules.minBid}, ${rules.maxBid}]`);
  return literal;
}
