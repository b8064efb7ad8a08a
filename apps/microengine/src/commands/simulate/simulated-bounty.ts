import { checkAnswer } from "./answer-check.js";
import type { LocalMarketplace, Offered } from "./local-marketplace.js";
import { bountyBody, postBounty } from "./signed-bounty.js";

/**
 * What `simulate` reports for a bounty the engine accepted and never answered, with the usual
 * cause: its answer could not reach this marketplace on loopback.
 */
export const noAnswerProblem =
  "no answer before expiration: the engine accepted the bounty and its answer never arrived; see the engine's log (in queue mode, the workers' logs): an engine or queue worker without ARTIFACT_ALLOW_PRIVATE_ADDRESSES=true refuses this marketplace's loopback response_url";

/** What the simulator saw for one bounty. */
export interface SimulatedBounty {
  artifact: string;
  phase: "assertion" | "arbitration";
  id: string;
  status: "ok" | "failed";
  problems: string[];
  verdict?: string;
  bid?: string;
  latencyMs?: number;
}

/** One bounty to post: an offered artifact (by its index), its bounty id, and the phase. */
export interface BountyJob {
  item: Offered;
  index: number;
  id: string;
  phase: "assertion" | "arbitration";
}

/** How the simulator posts bounties: where, signed how, with which rules and deadline. */
export interface BountySettings {
  engineUrl: string;
  secret?: string | undefined;
  /** Artifacts over the marketplace's loopback HTTP instead of `data:` URIs. */
  serveHttp?: boolean | undefined;
  expirationMs: number;
  minBid: bigint;
  maxBid: bigint;
}

/**
 * Posts one bounty, waits for its answer on the marketplace (up to a second past expiration),
 * and checks it (see checkAnswer).
 */
export async function simulateBounty(
  marketplace: LocalMarketplace,
  job: BountyJob,
  settings: BountySettings,
): Promise<SimulatedBounty> {
  const { item, index, id, phase } = job;
  const { base } = marketplace;
  const key = `${id}:${phase}`;
  const sentAt = Date.now();
  const expiresAt = sentAt + settings.expirationMs;
  const body = bountyBody(item, {
    id,
    phase,
    artifactUri: settings.serveHttp
      ? `${base}/artifacts/${index}`
      : `data:application/octet-stream;base64,${item.bytes.toString("base64")}`,
    expiresAt,
    responseUrl: `${base}/responses/${id}/${phase}`,
    minBid: settings.minBid,
    maxBid: settings.maxBid,
  });
  const arrived = marketplace.answerArrival(key, settings.expirationMs + 1000);
  const problems = await postBounty(settings.engineUrl, settings.secret, body);
  if (problems.length === 0) await arrived;
  const answer = marketplace.answer(key);
  const outcome: SimulatedBounty = { artifact: item.name, phase, id, status: "ok", problems };
  if (problems.length === 0 && !answer) problems.push(noAnswerProblem);
  if (answer) {
    const check = checkAnswer(answer, {
      ...settings,
      phase,
      expected: item.expected,
      sentAt,
      expiresAt,
    });
    outcome.latencyMs = check.latencyMs;
    outcome.verdict = check.verdict;
    if (check.bid !== undefined) outcome.bid = check.bid;
    problems.push(...check.problems);
  }
  outcome.status = problems.length === 0 ? "ok" : "failed";
  return outcome;
}
