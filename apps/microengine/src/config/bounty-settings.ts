import { z } from "zod";
import { integer, list } from "./setting-values.js";

/** Bounties: how many at once and waiting, filters, bids, the answer margin. */
export const bountySettings = z.object({
  /** Bounties downloading or scanning at once. Default 16. */
  BOUNTY_CONCURRENCY: integer(1, 4096).default(16),
  /**
   * Bounties that may wait for a slot. Past it (or past their deadline while waiting) a bounty
   * is answered unknown with SKIPPED:OVERLOADED; the scan API answers 503. Default 1000.
   */
  BOUNTY_BACKLOG: integer(0, 1_000_000).default(1000),
  /** Bytes the waiting bounties may hold (their bodies: a data: artifact counts). Default 64 MiB. */
  BOUNTY_BACKLOG_BYTES: integer(0, 2 ** 40).default(64 * 1024 * 1024),
  /** Bid strategy: linear (default), conservative, aggressive. */
  BID_STRATEGY: z.enum(["linear", "conservative", "aggressive"]).default("linear"),
  /** Bounty filters: only bounties matching every key=value (metadata or mimetype, artifact_type) are scanned. */
  BOUNTY_ACCEPT: list.default([]),
  /** Bounties matching any key=value are answered unknown without scanning. */
  BOUNTY_REJECT: list.default([]),
  /** key=value filters that raise the bid's confidence by 20 % (clamped). */
  BID_FAVOR: list.default([]),
  /** key=value filters that lower the bid's confidence by 20 % (clamped). */
  BID_PENALIZE: list.default([]),
  /** Time kept before a bounty's expiration to deliver the answer, in ms. Default 3000. */
  ANSWER_MARGIN_MS: integer(100, 600_000).default(3000),
});
