import { z } from "zod";

/**
 * The bounds of one unpack (one root artifact and everything inside it), ClamAV's names and
 * defaults where ClamAV has them. Every byte is counted as it comes out of a decoder, never
 * taken from what a container declares.
 */
export const unpackLimitsSchema = z.strictObject({
  /** Deepest member, the root being depth 0 (ClamAV's MaxRecursion). Default 17. */
  maxDepth: z.number().int().min(0).max(100).default(17),
  /** Members yielded per root, all depths (ClamAV's MaxFiles). Default 10,000. */
  maxMembers: z.number().int().min(1).max(1_000_000).default(10_000),
  /** Bytes one member may decode to (ClamAV's MaxFileSize). Default 100 MiB. */
  maxMemberBytes: z
    .number()
    .int()
    .positive()
    .default(100 * 1024 * 1024),
  /** Bytes all members of a root may decode to together (ClamAV's MaxScanSize). Default 400 MiB. */
  maxTotalBytes: z
    .number()
    .int()
    .positive()
    .default(400 * 1024 * 1024),
  /**
   * Largest ratio of a member's decoded bytes to its container's bytes, checked once a member
   * passed {@link ratioFloorBytes}: DEFLATE stays under 1032:1, so more than this is a bomb's
   * signature. Default 1,000.
   */
  maxRatio: z.number().positive().default(1_000),
  /** Decoded bytes of a member before its ratio is checked. Default 16 MiB. */
  ratioFloorBytes: z
    .number()
    .int()
    .nonnegative()
    .default(16 * 1024 * 1024),
});

/** The bounds of one unpack; see {@link unpackLimitsSchema}. */
export type UnpackLimits = z.output<typeof unpackLimitsSchema>;

/** Options of `unpack` and `createUnpackingScanner`. */
export const unpackOptionsSchema = z.strictObject({
  /** The bounds; see {@link unpackLimitsSchema}. Each has a ClamAV-like default. */
  limits: unpackLimitsSchema.default(unpackLimitsSchema.parse({})),
  /**
   * Skip a member whose content (SHA-256) was already seen in this root, its ancestors
   * included: a quine (a zip holding itself) ends, and 42.zip's identical layers are scanned
   * once. Default true.
   */
  skipDuplicates: z.boolean().default(true),
  /** Members up to this many bytes stay in memory; larger ones go to a private temp file. Default 8 MiB. */
  memoryLimitBytes: z
    .number()
    .int()
    .nonnegative()
    .default(8 * 1024 * 1024),
  /** Where larger members are spooled (under random names, never a member's). Default: the OS temp directory. */
  temporaryDirectory: z.string().min(1).optional(),
});

/** Options of `unpack` and `createUnpackingScanner`, as given. */
export type UnpackOptions = z.input<typeof unpackOptionsSchema>;
/** Options of `unpack`, defaults applied. */
export type ResolvedUnpackOptions = z.output<typeof unpackOptionsSchema>;
