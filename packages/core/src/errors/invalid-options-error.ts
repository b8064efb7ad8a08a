import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * Options given to a factory or a call did not validate. Thrown before any I/O; the message
 * names each offending option. Verdict mapping: `unknown` with `ERROR:INVALID_OPTIONS`.
 */
export class InvalidOptionsError extends EngineError {
  static override readonly code: EngineErrorCode = "INVALID_OPTIONS";
}
