import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * A scanner returned a value that does not match `scanResultSchema` (a contract bug in
 * that scanner). Verdict mapping: `unknown` with `ERROR:INVALID_RESULT`.
 */
export class InvalidResultError extends EngineError {
  static override readonly code: EngineErrorCode = "INVALID_RESULT";
}
