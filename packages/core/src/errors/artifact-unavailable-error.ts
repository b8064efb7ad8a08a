import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The artifact's content could not be read: a missing file, a failed download, a stream
 * that was already consumed. Verdict mapping: `unknown` with `ERROR:ARTIFACT_UNAVAILABLE`.
 */
export class ArtifactUnavailableError extends EngineError {
  static override readonly code: EngineErrorCode = "ARTIFACT_UNAVAILABLE";
}
