import { createHash, randomUUID } from "node:crypto";
import { request } from "undici";
import { signBody } from "../../protocol/webhook-signature.js";
import type { Offered } from "./local-marketplace.js";

/** What a simulated bounty says, besides its artifact. */
export interface BountyTerms {
  id: string;
  phase: "assertion" | "arbitration";
  /** Where the engine gets the artifact: a `data:` URI or the marketplace's URL. */
  artifactUri: string;
  /** ms since the epoch. */
  expiresAt: number;
  responseUrl: string;
  minBid: bigint;
  maxBid: bigint;
}

/**
 * The bounty's JSON as the marketplace sends it: bids as JSON integers (too large for a
 * double), and a field the engine must ignore.
 */
export function bountyBody(item: Offered, terms: BountyTerms): string {
  const { id, phase, artifactUri, expiresAt, responseUrl, minBid, maxBid } = terms;
  return `{"id":${id},"artifact_type":"FILE","artifact_uri":${JSON.stringify(artifactUri)},"expiration":${JSON.stringify(new Date(expiresAt).toISOString())},"response_url":${JSON.stringify(responseUrl)},"sha256":"${createHash("sha256").update(item.bytes).digest("hex")}","mimetype":"application/octet-stream","phase":"${phase}","metadata":{"filename":${JSON.stringify(item.name)}},"rules":{"min_allowed_bid":${minBid},"max_allowed_bid":${maxBid}},"extra_field_to_ignore":true}`;
}

/**
 * Posts a bounty to the engine's webhook, signed with `secret` when there is one. Resolves
 * with the problems: none when the engine took it (HTTP 202).
 */
export async function postBounty(
  engineUrl: string,
  secret: string | undefined,
  body: string,
): Promise<string[]> {
  const problems: string[] = [];
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-polyswarm-event": "bounty",
    "x-polyswarm-delivery": randomUUID(),
  };
  if (secret) headers["x-polyswarm-signature"] = signBody(secret, body);
  try {
    const posted = await request(engineUrl, { method: "POST", headers, body });
    const text = await posted.body.text();
    if (posted.statusCode !== 202)
      problems.push(
        `the engine answered the bounty with HTTP ${posted.statusCode}: ${text}${
          /response_url: the host is a private/.test(text)
            ? " (this simulator answers on loopback: start the engine with ARTIFACT_ALLOW_PRIVATE_ADDRESSES=true to try it locally)"
            : ""
        }`,
      );
  } catch (error) {
    problems.push(`cannot post to ${engineUrl}: ${(error as Error).message}`);
  }
  return problems;
}
