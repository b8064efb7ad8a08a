import { verdictSchema } from "@engine/core";
import type { AnswerTarget } from "../intake/bounty-processor.js";
import { allowedBidRange } from "./bid.js";
import { parseJsonWithBigInts } from "./bigint-json.js";

/**
 * Why an answer body about to be posted for `target` is not one the engine could have made
 * (a record read back from Redis), or undefined when it is: JSON with a verdict, metadata, and
 * for an assertion an integer bid within the bounty's rules (0 for `unknown` and `suspicious`);
 * an arbitration vote carries no bid.
 */
export function answerBodyProblem(text: string, target: AnswerTarget): string | undefined {
  let body: unknown;
  try {
    body = parseJsonWithBigInts(text);
  } catch {
    return "not JSON";
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "not an object";
  const { verdict, bid, metadata } = body as Record<string, unknown>;
  const parsedVerdict = verdictSchema.safeParse(verdict);
  if (!parsedVerdict.success) return "no valid verdict";
  if (typeof metadata !== "object" || metadata === null) return "no metadata";
  if (target.phase === "arbitration") return bid === undefined ? undefined : "a bid on a vote";
  const amount =
    typeof bid === "bigint" ? bid : Number.isSafeInteger(bid) ? BigInt(bid as number) : undefined;
  if (amount === undefined) return "no integer bid";
  if (parsedVerdict.data === "unknown" || parsedVerdict.data === "suspicious")
    return amount === 0n ? undefined : `a bid of ${amount} on ${parsedVerdict.data}`;
  const { min, max } = allowedBidRange(
    target.rules?.min_allowed_bid,
    target.rules?.max_allowed_bid,
  );
  if (amount < min || amount > max) return `a bid of ${amount} outside the rules [${min}, ${max}]`;
  return undefined;
}
