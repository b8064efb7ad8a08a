import { type EngineErrorCode, publicError } from "./errors/engine-error.js";
import type { ScanResult } from "./scan-result.js";
import type { VerdictMetadata } from "./verdict-metadata.js";

/**
 * The verdict comment each error code maps to. Every error maps to `unknown` with confidence 0:
 * an engine that could not inspect an artifact has no opinion on it, and saying `benign` would
 * turn an outage into a clean bill of health. `SKIPPED:*` means the artifact itself could not
 * be inspected (modern PolySwarm engines answer `SKIPPED:ENCRYPTED` for protected archives);
 * `ERROR:*` means our side failed and a retry may succeed.
 */
export const errorVerdictComments: Readonly<Record<EngineErrorCode, string>> = {
  ENGINE_ERROR: "ERROR:INTERNAL",
  INVALID_OPTIONS: "ERROR:INVALID_OPTIONS",
  BACKEND_UNAVAILABLE: "ERROR:BACKEND_UNAVAILABLE",
  SCAN_TIMEOUT: "ERROR:TIMEOUT",
  SCAN_ABORTED: "ERROR:ABORTED",
  ARTIFACT_TOO_LARGE: "SKIPPED:TOO_LARGE",
  ARTIFACT_UNAVAILABLE: "ERROR:ARTIFACT_UNAVAILABLE",
  PROTOCOL_ERROR: "ERROR:PROTOCOL",
  INVALID_RESULT: "ERROR:INVALID_RESULT",
  UNSUPPORTED_ARTIFACT: "SKIPPED:UNSUPPORTED",
  ENCRYPTED_ARTIFACT: "SKIPPED:ENCRYPTED",
  CORRUPT_ARTIFACT: "SKIPPED:CORRUPT",
  OVERLOADED: "SKIPPED:OVERLOADED",
};

/**
 * Turns any thrown value into the `unknown` answer an engine sends when it cannot scan:
 * confidence 0, `comments` holding the code comment (`SKIPPED:ENCRYPTED`, `ERROR:TIMEOUT`, ...)
 * and the error's short public reason (`publicMessage`), never its detailed message, which
 * may name paths, sockets or hosts: log the error itself. Non-engine errors map to
 * `ERROR:INTERNAL` / "internal error".
 * @param error what was thrown
 * @param metadata extra metadata to keep (scanner versions, provenance)
 */
export function scanResultForError(
  error: unknown,
  metadata: Partial<VerdictMetadata> = {},
): ScanResult {
  const { code, message } = publicError(error);
  return {
    verdict: "unknown",
    confidence: 0,
    metadata: {
      ...metadata,
      malware_family: metadata.malware_family ?? "",
      comments: [...(metadata.comments ?? []), errorVerdictComments[code], message],
    },
  };
}
