import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The backend (daemon, rules, worker pool) could not be reached or is not ready. A scanner
 * throws this instead of answering: an outage must never read as `benign`.
 * Verdict mapping: `unknown` with `ERROR:BACKEND_UNAVAILABLE`.
 */
export class BackendUnavailableError extends EngineError {
  static override readonly code: EngineErrorCode = "BACKEND_UNAVAILABLE";
}
