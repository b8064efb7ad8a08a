import { ArtifactUnavailableError } from "@engine/core";
import { tooLarge } from "./fetch-errors.js";

/**
 * Reads a `data:` URL exactly as WHATWG `fetch` does (the data URL processor of the Fetch
 * standard, as implemented by Node's own `fetch`): `;BASE64` and `; base64` are base64,
 * percent-escapes are decoded before base64, whitespace inside base64 is skipped, and a body
 * that is not valid base64 is an error, never zero bytes. Any other reading would let a sender
 * make the engine scan other bytes than the marketplace and every other client see.
 */
export async function decodeDataUri(
  url: URL,
  maxBytes: number,
): Promise<{ bytes: Buffer; mimetype?: string }> {
  // Percent-encoding takes at most three characters a byte: anything longer is too large.
  if (url.href.length > maxBytes * 3 + 1024) throw tooLarge(maxBytes);
  let response: Response;
  try {
    // Node's fetch only for data: (no network): the caller checked the scheme.
    response = await fetch(url.href);
  } catch (error) {
    throw new ArtifactUnavailableError({
      message: `@engine/microengine: malformed data: URI (${(error as Error)?.cause instanceof Error ? ((error as Error).cause as Error).message : String(error)})`,
      hint: "A data: URI is decoded as WHATWG fetch decodes it: base64 must be valid.",
      publicMessage: "malformed data: URI",
      cause: error,
    });
  }
  const bytes = Buffer.from(await response.arrayBuffer());
  if (bytes.length > maxBytes) throw tooLarge(maxBytes, bytes.length);
  const mimetype = response.headers.get("content-type")?.split(";")[0]?.trim();
  return { bytes, ...(mimetype ? { mimetype } : {}) };
}

/** A URI as the WHATWG URL parser reads it (the scheme lowercased, tabs and newlines removed). */
export function parseUri(uri: string): URL {
  try {
    return new URL(uri);
  } catch (error) {
    throw new ArtifactUnavailableError({
      message: `@engine/microengine: the artifact URI is not a URL: ${(error as Error).message}`,
      publicMessage: "the artifact URI is not a URL",
      cause: error,
    });
  }
}
