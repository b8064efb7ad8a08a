import { z } from "zod";
import type { AnswerTarget } from "../intake/bounty-processor.js";
import { withBigIntsAsStrings } from "../protocol/bigint-json.js";
import { type Bounty, bountyIdPattern, reviveBounty } from "../protocol/bounty.js";
import type { RedisSeal } from "./redis-seal.js";

/** The job id of a bounty and phase: a webhook redelivered, or sent to two receivers, never makes a second job. */
export function bountyJobId(bounty: Pick<Bounty, "id" | "phase">): string {
  return `bounty-${bounty.id}-${bounty.phase}`;
}

/** The job id of a bounty's deadline job. */
export function deadlineJobId(bounty: Pick<Bounty, "id" | "phase">): string {
  return `deadline-${bounty.id}-${bounty.phase}`;
}

/** Thrown for job data that does not verify under QUEUE_SECRET: it is ignored, never run or answered. */
export class ForgedJobError extends Error {
  constructor(jobId: string | undefined) {
    super(
      `queued job ${JSON.stringify(jobId)} does not verify under QUEUE_SECRET (forged, corrupt, or from an engine with another secret): ignored`,
    );
    this.name = "ForgedJobError";
  }
}

/** A bounty job's data: the bounty as JSON (bigints as decimal strings) and its seal. */
export interface BountyJobData {
  bounty: Record<string, unknown>;
  seal: string;
}

/**
 * A bounty as a job carries it: JSON, with bigints (the bids, large integers in metadata) as
 * decimal strings, sealed under QUEUE_SECRET with its job id. Only the bid rules become bigints
 * again, through the bounty schema.
 */
export function toJobData(bounty: Bounty, seal: RedisSeal): BountyJobData {
  const plain = withBigIntsAsStrings(bounty) as Record<string, unknown>;
  return {
    bounty: plain,
    seal: seal.sign("bounty-job", bountyJobId(bounty), JSON.stringify(plain)),
  };
}

/**
 * The bounty of a job whose data verifies under its id. Throws ForgedJobError when it does not
 * verify (a value written to Redis without the secret), BountyBodyError when it verifies but
 * no longer validates (a job from an incompatible release).
 */
export function fromJobData(data: unknown, jobId: string | undefined, seal: RedisSeal): Bounty {
  return reviveBounty(verifiedBounty(data, jobId, seal));
}

/** The sealed bounty JSON of a job, or ForgedJobError. */
function verifiedBounty(data: unknown, jobId: string | undefined, seal: RedisSeal): unknown {
  const { bounty, seal: given } = (data ?? {}) as { bounty?: unknown; seal?: unknown };
  if (
    jobId === undefined ||
    typeof bounty !== "object" ||
    bounty === null ||
    !seal.verify("bounty-job", jobId, JSON.stringify(bounty), given)
  )
    throw new ForgedJobError(jobId);
  return bounty;
}

/** Bid rules as a job carries them (decimal strings) and as a target needs them (bigints). */
const rulesSchema = z
  .object({
    min_allowed_bid: z
      .string()
      .regex(/^\d{1,80}$/)
      .transform(BigInt)
      .optional(),
    max_allowed_bid: z
      .string()
      .regex(/^\d{1,80}$/)
      .transform(BigInt)
      .optional(),
  })
  .nullish()
  .transform((rules) => rules ?? undefined);

/** What the deadline watcher needs to answer a bounty, and what a failed job must still hold. */
const answerTargetSchema = z.object({
  id: z.string().regex(bountyIdPattern),
  phase: z.enum(["assertion", "arbitration"]),
  response_url: z.url({ protocol: /^https?$/ }),
  expiresAt: z.number().finite(),
  rules: rulesSchema,
});

/** A target to answer without scanning (the bid rules included: answers are checked against them). */
export type UnscannedTarget = Omit<AnswerTarget, "favor" | "penalize">;

function answerTargetOf(value: unknown): UnscannedTarget | undefined {
  const parsed = answerTargetSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** A deadline job's data: whom to answer if nobody did, and its seal. */
export interface DeadlineJobData {
  target: Record<string, unknown>;
  seal: string;
}

/** The deadline job of a bounty, sealed with its job id. */
export function toDeadlineJobData(bounty: Bounty, seal: RedisSeal): DeadlineJobData {
  const target = withBigIntsAsStrings({
    id: bounty.id,
    phase: bounty.phase,
    response_url: bounty.response_url,
    expiresAt: bounty.expiresAt,
    rules: bounty.rules ?? undefined,
  }) as Record<string, unknown>;
  return {
    target,
    seal: seal.sign("deadline-job", deadlineJobId(bounty), JSON.stringify(target)),
  };
}

/** The target of a deadline job whose data verifies; undefined (counted) otherwise. */
export function deadlineTargetOf(
  data: unknown,
  jobId: string | undefined,
  seal: RedisSeal,
): UnscannedTarget | undefined {
  const { target, seal: given } = (data ?? {}) as { target?: unknown; seal?: unknown };
  if (jobId === undefined || typeof target !== "object" || target === null) return undefined;
  if (!seal.verify("deadline-job", jobId, JSON.stringify(target), given)) return undefined;
  return answerTargetOf(target);
}

/** The target of a failed bounty job whose data verifies (to answer it unknown); undefined otherwise. */
export function failedJobTargetOf(
  data: unknown,
  jobId: string | undefined,
  seal: RedisSeal,
): UnscannedTarget | undefined {
  try {
    return answerTargetOf(verifiedBounty(data, jobId, seal));
  } catch {
    return undefined;
  }
}
