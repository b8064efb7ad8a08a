import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The artifact is larger than a configured limit (ours, or the backend's such as clamd's
 * `StreamMaxLength`). It was not scanned whole, so no verdict is given.
 * Verdict mapping: `unknown` with `SKIPPED:TOO_LARGE`.
 */
export class ArtifactTooLargeError extends EngineError {
  static override readonly code: EngineErrorCode = "ARTIFACT_TOO_LARGE";
}
