import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The artifact is malformed (a truncated archive, a broken header) and the backend refused
 * it. Verdict mapping: `unknown` with `SKIPPED:CORRUPT`.
 */
export class CorruptArtifactError extends EngineError {
  static override readonly code: EngineErrorCode = "CORRUPT_ARTIFACT";
}
