import type { Duplex } from "node:stream";
import { ArtifactUnavailableError } from "@engine/core";
import { type Agent, request } from "undici";
import { isAllowedHost, literalAddressRefusal } from "./address-policy.js";
import {
  type FetchedArtifact,
  type FetchPolicy,
  toMemory,
  toTemporaryFile,
} from "./artifact-sinks.js";
import { contentDecoders } from "./content-coding.js";
import { refused, tooLarge } from "./fetch-errors.js";

/** Redirects followed at most (each checked like the first request). */
const maximumRedirects = 5;

/**
 * Downloads `uri` over http(s) from an allowed host and a public address (checked on every
 * redirect and on the address connected to), asking for the identity coding and decoding or
 * refusing any other; small bodies of known size stay in memory, others go to a temp file.
 */
export async function download(
  uri: URL,
  policy: FetchPolicy & { sharedDirectory?: string },
  agent: Agent,
  signal: AbortSignal,
  info: { mimetype?: string },
  memoryLimit: number,
): Promise<FetchedArtifact> {
  let current = uri;
  for (let redirects = 0; ; redirects += 1) {
    if (current.protocol !== "https:" && current.protocol !== "http:")
      throw refused(`${current.protocol} is not allowed`);
    if (!isAllowedHost(current.hostname, policy.allowedHosts))
      throw refused(
        "the host is not in ARTIFACT_ALLOWED_HOSTS",
        `host ${current.hostname} is not in ARTIFACT_ALLOWED_HOSTS`,
      );
    const literalRefusal = literalAddressRefusal(current, policy);
    if (literalRefusal) throw refused(literalRefusal, `${current.hostname}: ${literalRefusal}`);
    const response = await request(current, {
      dispatcher: agent,
      signal,
      maxRedirections: 0,
      // Asked for as it is; a server that encodes anyway is decoded below, or refused.
      headers: { "accept-encoding": "identity" },
    } as Parameters<typeof request>[1]);
    if (response.statusCode >= 300 && response.statusCode < 400 && response.headers.location) {
      await response.body.dump();
      if (redirects >= maximumRedirects) throw refused(`more than ${maximumRedirects} redirects`);
      current = new URL(String(response.headers.location), current);
      continue;
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new ArtifactUnavailableError({
        message: `@engine/microengine: the artifact server answered HTTP ${response.statusCode}`,
        publicMessage: `the artifact server answered HTTP ${response.statusCode}`,
      });
    }
    const declared = Number(response.headers["content-length"]);
    if (Number.isFinite(declared) && declared > policy.maxBytes) {
      await response.body.dump({ limit: 0 }).catch(() => {});
      throw tooLarge(policy.maxBytes, declared);
    }
    let decoders: Duplex[];
    try {
      decoders = contentDecoders(response.headers["content-encoding"], policy.maxBytes);
    } catch (error) {
      await response.body.dump({ limit: 0 }).catch(() => {});
      throw error;
    }
    const filename = current.pathname.split("/").pop() || undefined;
    const fileInfo = { ...info, ...(filename ? { filename } : {}) };
    // An encoded body's decoded size is unknown: it goes through a temp file, capped.
    if (decoders.length === 0 && Number.isFinite(declared) && declared <= memoryLimit)
      return await toMemory(response.body, policy.maxBytes, fileInfo);
    return await toTemporaryFile(response.body, policy, signal, fileInfo, decoders);
  }
}
