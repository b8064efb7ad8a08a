import { z } from "zod";

const bigintText = z.union([
  z.bigint(),
  z
    .number()
    .int()
    .transform((value) => BigInt(value)),
  z
    .string()
    .regex(/^\d+$/, "an integer")
    .transform((value) => BigInt(value)),
]);

/** Default time to answer when a bounty has no expiration: 30 s after receipt, as the SDKs assume. */
export const defaultBountySeconds = 30;

/**
 * A bounty as the marketplace posts it. Tolerant where the SDKs are (extra fields ignored,
 * `artifact_type` in any case, missing expiration defaulted) and strict where it matters
 * (types, URLs, ids). Bids in `rules` are parsed from the raw JSON text as integers (they
 * exceed JavaScript's safe integers), see {@link parseBountyBody}.
 */
export const bountySchema = z.object({
  id: z
    .union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)])
    .transform(String),
  artifact_type: z
    .string()
    .transform((value) => value.toLowerCase())
    .pipe(z.enum(["file", "url"])),
  artifact_uri: z.string().min(1),
  expiration: z.string().datetime({ offset: true }).optional(),
  response_url: z.url({ protocol: /^https?$/ }),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/)
    .transform((value) => value.toLowerCase())
    .optional()
    .nullable(),
  mimetype: z.string().optional().nullable(),
  phase: z
    .string()
    .transform((value) => value.toLowerCase())
    .pipe(z.enum(["assertion", "arbitration"]))
    .default("assertion"),
  metadata: z.record(z.string(), z.unknown()).optional().nullable(),
  rules: z
    .object({ min_allowed_bid: bigintText.optional(), max_allowed_bid: bigintText.optional() })
    .optional()
    .nullable(),
  duration: z.number().positive().optional().nullable(),
});

/** A validated bounty with its expiration resolved (epoch milliseconds). */
export type Bounty = z.output<typeof bountySchema> & { expiresAt: number };

/** Why a body was refused, naming the field. */
export class BountyBodyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BountyBodyError";
  }
}

/** Replaces large integer literals of the bid fields with strings before JSON.parse loses precision. */
function protectBids(text: string): string {
  return text.replace(
    /"(min_allowed_bid|max_allowed_bid)"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
    '"$1":"$2"',
  );
}

/**
 * Parses and validates a raw bounty body. Throws {@link BountyBodyError} naming the field.
 * @param body the raw request body
 * @param receivedAt when it arrived (epoch ms), for a missing expiration
 */
export function parseBountyBody(body: Buffer | string, receivedAt = Date.now()): Bounty {
  let json: unknown;
  try {
    json = JSON.parse(protectBids(typeof body === "string" ? body : body.toString("utf8")));
  } catch (error) {
    throw new BountyBodyError(`the body is not JSON: ${(error as Error).message}`);
  }
  const parsed = bountySchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BountyBodyError(`${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`);
  }
  const bounty = parsed.data;
  const min = bounty.rules?.min_allowed_bid;
  const max = bounty.rules?.max_allowed_bid;
  if (min !== undefined && max !== undefined && min > max)
    throw new BountyBodyError("rules: min_allowed_bid is above max_allowed_bid");
  const expiresAt = bounty.expiration
    ? Date.parse(bounty.expiration)
    : receivedAt + (bounty.duration ?? defaultBountySeconds) * 1000;
  return { ...bounty, expiresAt };
}
