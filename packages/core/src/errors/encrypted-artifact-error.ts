import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The artifact is encrypted (a password-protected archive or document) and its content
 * could not be inspected. Verdict mapping: `unknown` with `SKIPPED:ENCRYPTED`, as modern
 * PolySwarm engines answer.
 */
export class EncryptedArtifactError extends EngineError {
  static override readonly code: EngineErrorCode = "ENCRYPTED_ARTIFACT";
}
