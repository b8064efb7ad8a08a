import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The backend cannot scan this kind of artifact (a URL given to a file-only engine, an
 * unsupported format). Verdict mapping: `unknown` with `SKIPPED:UNSUPPORTED`.
 */
export class UnsupportedArtifactError extends EngineError {
  static override readonly code: EngineErrorCode = "UNSUPPORTED_ARTIFACT";
}
