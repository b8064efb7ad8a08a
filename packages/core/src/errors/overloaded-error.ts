import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The scanner (or the engine) is saturated: its bounded queue is full, or the work waited past
 * its deadline for a free slot. Nothing was scanned; a retry later may succeed.
 * Verdict mapping: `unknown` with `SKIPPED:OVERLOADED`.
 */
export class OverloadedError extends EngineError {
  static override readonly code: EngineErrorCode = "OVERLOADED";
}
