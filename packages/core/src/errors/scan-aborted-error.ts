import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The caller's `AbortSignal` fired before the scan finished; the signal's reason is the
 * `cause`. Verdict mapping: `unknown` with `ERROR:ABORTED`.
 */
export class ScanAbortedError extends EngineError {
  static override readonly code: EngineErrorCode = "SCAN_ABORTED";
}
