import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The scan passed its `deadline` (or a backend read timeout) before the backend answered.
 * Verdict mapping: `unknown` with `ERROR:TIMEOUT`.
 */
export class ScanTimeoutError extends EngineError {
  static override readonly code: EngineErrorCode = "SCAN_TIMEOUT";
}
