import { z } from "zod";
import type { Artifact } from "./artifact.js";
import { defineScanner } from "./define-scanner.js";
import { InvalidOptionsError } from "./errors/invalid-options-error.js";
import type { ScanResult } from "./scan-result.js";
import type { Scanner } from "./scanner.js";
import { type VerdictMetadata, verdictMetadataSchema } from "./verdict-metadata.js";

/**
 * The tutorial's scan answer `(bit, verdict, metadata)`, with the meanings the SDK's code
 * gives them: `bit` = "we assert on this artifact", `verdict` = "it is malicious",
 * `metadata` = a string (JSON verdict metadata in later SDKs).
 */
export interface LegacyTuple {
  /** True when the engine asserts (has an opinion). */
  bit: boolean;
  /** True when the artifact is malicious. */
  verdict: boolean;
  /** Free text or JSON verdict metadata. */
  metadata: string;
}

/**
 * A {@link ScanResult} as the tutorial's tuple: `malicious` -> `(true, true)`, `benign` ->
 * `(true, false)`, `suspicious` and `unknown` -> `(false, false)` (no assertion: the legacy
 * tuple cannot say "suspicious", and asserting benign on it would be wrong).
 * `metadata` is the JSON of the verdict metadata; for a multi-engine result (with
 * `metadata.backends`), the backends' metadata JSON joined with `;`, as the tutorial's
 * `';'.join(metadatas)`.
 */
export function toLegacyTuple(result: ScanResult): LegacyTuple {
  const { backends } = result.metadata;
  return {
    bit: result.verdict === "malicious" || result.verdict === "benign",
    verdict: result.verdict === "malicious",
    // A multi-engine answer joins its backends' metadata with ";", as the tutorial's multi does.
    metadata: backends
      ? backends
          .map((backend) => (backend.metadata ? JSON.stringify(backend.metadata) : ""))
          .join(";")
      : JSON.stringify(result.metadata),
  };
}

const legacyTupleSchema = z.union([
  z.strictObject({ bit: z.boolean(), verdict: z.boolean(), metadata: z.string().default("") }),
  z
    .tuple([z.boolean(), z.boolean()])
    .rest(z.string())
    .transform(([bit, verdict, metadata]) => ({ bit, verdict, metadata: metadata ?? "" })),
]);

/** A tuple as an object `{ bit, verdict, metadata }` or the Python-style array `[bit, verdict, metadata]`. */
export type LegacyTupleInput = z.input<typeof legacyTupleSchema>;

function legacyMetadata(text: string): VerdictMetadata {
  if (text.trim().startsWith("{")) {
    try {
      const parsed = verdictMetadataSchema.safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data;
    } catch {
      // not JSON after all: keep it as a comment below
    }
  }
  return text.length > 0 ? { malware_family: "", comments: [text] } : { malware_family: "" };
}

/**
 * The inverse of {@link toLegacyTuple}: `(false, _)` -> `unknown` (confidence 0),
 * `(true, true)` -> `malicious`, `(true, false)` -> `benign`. JSON verdict metadata is parsed;
 * any other text is kept as a comment.
 * @param tuple the tuple, as an object or a `[bit, verdict, metadata]` array
 * @param confidence confidence of an assertion, 0..1. Default 1.
 */
export function fromLegacyTuple(tuple: LegacyTupleInput, confidence = 1): ScanResult {
  const parsed = legacyTupleSchema.safeParse(tuple);
  if (!parsed.success) {
    throw new InvalidOptionsError({
      message: `@engine/core: fromLegacyTuple expects { bit, verdict, metadata } or [bit, verdict, metadata]: ${z.prettifyError(parsed.error)}`,
      cause: parsed.error,
    });
  }
  const { bit, verdict, metadata } = parsed.data;
  if (!bit) return { verdict: "unknown", confidence: 0, metadata: legacyMetadata(metadata) };
  return {
    verdict: verdict ? "malicious" : "benign",
    confidence,
    metadata: legacyMetadata(metadata),
  };
}

/** A scan function in the tutorial's style: `scan(guid, content, chain) -> (bit, verdict, metadata)`. */
export type LegacyScanFunction = (
  guid: string,
  content: Uint8Array,
  chain: string,
) => Promise<LegacyTupleInput> | LegacyTupleInput;

/**
 * Adapts a scanner written in the tutorial's style into a {@link Scanner}. The artifact is
 * read into memory (legacy scanners take whole content), `guid` is the artifact's sha256 or
 * a random id, `chain` is `"side"`.
 * @param name scanner name
 * @param scan the legacy scan function
 * @param confidence confidence of its assertions, 0..1. Default 1.
 */
export function fromLegacyScanner(name: string, scan: LegacyScanFunction, confidence = 1): Scanner {
  return defineScanner({
    name,
    async scan(artifact: Artifact, { signal }) {
      const content = await artifact.bytes({ signal });
      const guid = artifact.sha256 ?? crypto.randomUUID();
      return fromLegacyTuple(await scan(guid, content, "side"), confidence);
    },
  });
}
