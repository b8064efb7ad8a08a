import type { AnswerTarget } from "../../src/intake/answer-target.js";

/** An assertion to answer, with bid rules of 1,000 to 5,000 wei, expiring in a minute. */
export function answerTarget(overrides: Partial<AnswerTarget> = {}): AnswerTarget {
  return {
    id: "7",
    phase: "assertion",
    response_url: "https://m.example/answers/7",
    expiresAt: Date.now() + 60_000,
    rules: { min_allowed_bid: 1_000n, max_allowed_bid: 5_000n },
    favor: false,
    penalize: false,
    ...overrides,
  };
}
