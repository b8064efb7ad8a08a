import { z } from "zod";
import { parseJsonWithBigInts } from "./bigint-json.js";

/** Default time to answer when a bounty has no expiration: 30 s after receipt, as the SDKs assume. */
export const defaultBountySeconds = 30;

/**
 * The latest expiration a bounty may have, from its receipt: 24 hours. A marketplace gives
 * engines seconds to minutes; a later one only holds a timer and memory for an attacker.
 */
export const maximumBountyLifetimeMs = 24 * 60 * 60 * 1000;

/** Bounty ids: decimal digits (uint256 has at most 78), kept exactly as given. */
const idDigits = /^\d{1,78}$/;

/** Bounty ids as the webhook SDK's integration fixtures write them: a UUID (8-4-4-4-12 hex digits). */
const idUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * What a validated bounty id looks like: decimal digits, or a UUID in lower case. Ids name
 * queue jobs and ledger keys, so nothing else (no `:`, no spaces) ever gets into one.
 */
export const bountyIdPattern =
  /^(?:\d{1,78}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * The phases a bounty may name, case-insensitive, and the phase each one means. The webhook SDK
 * posts `assertion_window` and `arbitration_window`; the protocol documents the short names.
 */
export const bountyPhaseNames: Readonly<Record<string, "assertion" | "arbitration">> = {
  assertion: "assertion",
  assertion_window: "assertion",
  arbitration: "arbitration",
  arbitration_window: "arbitration",
};

const acceptedPhases = Object.keys(bountyPhaseNames).join(", ");

/** The largest uint256: ids and amounts on the marketplace's chain are at most this. */
const uint256Max = 2n ** 256n - 1n;

/** A non-negative integer amount in wei, however it was written: JSON integer (up to uint256) or digits. */
const wei = z.union([
  z.bigint().nonnegative().max(uint256Max, "at most 2^256 - 1"),
  z
    .number()
    .int()
    .nonnegative()
    .transform((value) => BigInt(value)),
  z
    .string()
    .regex(/^\d{1,78}$/, "a non-negative integer")
    .transform((value) => BigInt(value)),
]);

/**
 * A bounty as the marketplace posts it. Tolerant where the SDKs are (extra fields ignored,
 * `artifact_type` and `phase` in any case, missing expiration defaulted) and strict where it
 * matters: ids are kept exactly as given (a string of digits, or a JSON integer of any size,
 * so that two ids never merge), bids are exact integers, and times are bounded.
 * Parse raw bodies with {@link parseBountyBody}, which keeps large integers exact.
 */
export const bountySchema = z.object({
  id: z.union([
    z.string().regex(idDigits, "a string of decimal digits or a UUID"),
    z
      .string()
      .regex(idUuid, "a string of decimal digits or a UUID")
      .transform((value) => value.toLowerCase()),
    z.bigint().nonnegative().max(uint256Max, "at most 2^256 - 1").transform(String),
    z.number().int().nonnegative().transform(String),
  ]),
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
    .string({ error: `a string; accepted (any case): ${acceptedPhases}` })
    .nullish()
    .transform((value, context): "assertion" | "arbitration" => {
      if (value === undefined || value === null) return "assertion";
      const name = value.toLowerCase();
      if (Object.hasOwn(bountyPhaseNames, name))
        return bountyPhaseNames[name] as "assertion" | "arbitration";
      context.addIssue({
        code: "custom",
        message: `not a phase; accepted (any case): ${acceptedPhases}`,
      });
      return z.NEVER;
    }),
  metadata: z.record(z.string(), z.unknown()).optional().nullable(),
  rules: z
    .object({ min_allowed_bid: wei.optional(), max_allowed_bid: wei.optional() })
    .optional()
    .nullable(),
  duration: z
    .number()
    .positive()
    .max(maximumBountyLifetimeMs / 1000, "at most 86400 seconds")
    .optional()
    .nullable(),
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

/**
 * Validates a parsed bounty (a webhook body, a queued job): the schema, then what it cannot
 * say alone. Throws {@link BountyBodyError} naming the field.
 * @param json the parsed body (large integers as bigint, see {@link parseBountyBody})
 * @param receivedAt when it arrived (epoch ms), for a missing expiration and the bounds
 */
export function validateBounty(json: unknown, receivedAt = Date.now()): Bounty {
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
  if (expiresAt > receivedAt + maximumBountyLifetimeMs)
    throw new BountyBodyError("expiration: more than 24 hours ahead");
  if (expiresAt <= receivedAt) throw new BountyBodyError("expiration: already passed");
  return { ...bounty, expiresAt };
}

/** The deepest nesting of objects and arrays a bounty body may have (the bounty itself is level 1). */
export const maximumNestingDepth = 32;

/**
 * True when JSON `text` opens more than `limit` objects or arrays inside one another (a scan
 * that skips strings; it stops at the first level past the limit, so its cost is bounded by
 * the text, never by recursion).
 */
export function exceedsNesting(text: string, limit: number): boolean {
  let depth = 0;
  for (let index = 0; index < text.length; index += 1) {
    const character = text.charCodeAt(index);
    if (character === 0x22 /* " */) {
      for (index += 1; index < text.length; index += 1) {
        const inner = text.charCodeAt(index);
        if (inner === 0x5c /* \ */) index += 1;
        else if (inner === 0x22) break;
      }
    } else if (character === 0x7b /* { */ || character === 0x5b /* [ */) {
      depth += 1;
      if (depth > limit) return true;
    } else if (character === 0x7d /* } */ || character === 0x5d /* ] */) {
      depth -= 1;
    }
  }
  return false;
}

/**
 * Parses and validates a raw bounty body (integers beyond 2^53 kept exact). Throws
 * {@link BountyBodyError} naming the field.
 * @param body the raw request body
 * @param receivedAt when it arrived (epoch ms), for a missing expiration and the bounds
 */
export function parseBountyBody(body: Buffer | string, receivedAt = Date.now()): Bounty {
  const text = typeof body === "string" ? body : body.toString("utf8");
  // A body nested deeper than any bounty is refused before it is parsed: 3,000 levels of
  // metadata overflowed JSON.stringify when queued, and the webhook answered 503 for ever.
  if (exceedsNesting(text, maximumNestingDepth))
    throw new BountyBodyError(
      `the body is nested more than ${maximumNestingDepth} levels deep (metadata included)`,
    );
  let json: unknown;
  try {
    json = parseJsonWithBigInts(text);
  } catch (error) {
    throw new BountyBodyError(`the body is not JSON: ${(error as Error).message}`);
  }
  return validateBounty(json, receivedAt);
}

/**
 * A bounty that was validated on receipt and passed through a queue: the schema again (a
 * queue is a boundary too), and its resolved expiration, without the receipt-time bounds.
 */
export function reviveBounty(json: unknown): Bounty {
  const parsed = bountySchema.safeParse(json);
  const expiresAt = (json as { expiresAt?: unknown } | null)?.expiresAt;
  // The receipt-time bound again, so that no timer set for a queued bounty can overflow.
  if (
    !parsed.success ||
    typeof expiresAt !== "number" ||
    !Number.isFinite(expiresAt) ||
    expiresAt > Date.now() + maximumBountyLifetimeMs
  ) {
    const issue = parsed.success ? undefined : parsed.error.issues[0];
    throw new BountyBodyError(
      `queued bounty: ${issue ? `${issue.path.join(".") || "body"}: ${issue.message}` : "expiresAt is missing or more than 24 hours ahead"}`,
    );
  }
  return { ...parsed.data, expiresAt };
}
