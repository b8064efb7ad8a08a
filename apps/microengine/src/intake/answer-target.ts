import type { Bounty } from "../protocol/bounty.js";

/** What answering a bounty needs once its artifact is scanned (not the artifact URI or metadata). */
export interface AnswerTarget {
  id: string;
  phase: Bounty["phase"];
  response_url: string;
  expiresAt: number;
  rules: Bounty["rules"];
  favor: boolean;
  penalize: boolean;
}
