import { randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { eicarBytes } from "@engine/core";
import { defaultBidRange } from "../../protocol/bid.js";
import { type Offered, startLocalMarketplace } from "./local-marketplace.js";
import { type BountyJob, type SimulatedBounty, simulateBounty } from "./simulated-bounty.js";

export type { SimulatedBounty } from "./simulated-bounty.js";

/** Options of {@link simulate}. */
export interface SimulateOptions {
  /** The engine's webhook URL, e.g. http://127.0.0.1:8080/. */
  engineUrl: string;
  /** The shared WEBHOOK_SECRET; without it bounties go unsigned. */
  secret?: string | undefined;
  /** Extra files to offer (no expected verdict). */
  paths?: string[];
  /** Seconds each bounty has before it expires. Default 30. */
  expirationSeconds?: number;
  /** Serve artifacts over loopback HTTP instead of data: URIs (the engine must allow 127.0.0.1). */
  serveHttp?: boolean;
  /** Bid range of the rules. Default: the marketplace's. */
  minBid?: bigint;
  maxBid?: bigint;
}

/**
 * A local marketplace (the tutorials' "test ambassador"): serves artifacts, posts signed
 * bounties to an engine, receives the answers on its own `response_url`, and checks them:
 * the answer's shape, an integer bid within the rules (0 for unknown and suspicious), the
 * expected verdicts for EICAR (malicious) and a benign file, a vote in the arbitration phase,
 * and that each answer arrived before expiration.
 */
export async function simulate(options: SimulateOptions): Promise<SimulatedBounty[]> {
  const settings = {
    engineUrl: options.engineUrl,
    secret: options.secret,
    serveHttp: options.serveHttp,
    expirationMs: (options.expirationSeconds ?? 30) * 1000,
    minBid: options.minBid ?? defaultBidRange.min,
    maxBid: options.maxBid ?? defaultBidRange.max,
  };
  const offered = await offeredArtifacts(options.paths ?? []);
  const marketplace = await startLocalMarketplace(offered);
  try {
    return await Promise.all(
      bountyJobs(offered).map((job) => simulateBounty(marketplace, job, settings)),
    );
  } finally {
    await marketplace.close();
  }
}

/** EICAR (expected malicious), a benign file (expected benign), and the files at `paths`. */
async function offeredArtifacts(paths: readonly string[]): Promise<Offered[]> {
  const offered: Offered[] = [
    { name: "eicar.com", bytes: eicarBytes(), expected: "malicious" },
    {
      name: "benign.txt",
      bytes: Buffer.from("A benign text file from the microengine simulator.\n"),
      expected: "benign",
    },
  ];
  for (const path of paths) offered.push({ name: basename(path), bytes: await readFile(path) });
  return offered;
}

/**
 * The bounties to post: an assertion for each artifact, and an arbitration too for the one
 * expected malicious; both phases of an artifact share its bounty id.
 */
function bountyJobs(offered: readonly Offered[]): BountyJob[] {
  return offered.flatMap((item, index) => {
    const phases: Array<"assertion" | "arbitration"> =
      item.expected === "malicious" ? ["assertion", "arbitration"] : ["assertion"];
    const id = String(randomInt(1, 2 ** 47));
    return phases.map((phase) => ({ item, index, id, phase }));
  });
}
