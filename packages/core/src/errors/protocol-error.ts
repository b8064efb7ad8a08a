import { EngineError, type EngineErrorCode } from "./engine-error.js";

/**
 * The backend answered something we cannot parse or did not expect (garbage on the clamd
 * socket, `UNKNOWN COMMAND`, a truncated reply). Verdict mapping: `unknown` with `ERROR:PROTOCOL`.
 */
export class ProtocolError extends EngineError {
  static override readonly code: EngineErrorCode = "PROTOCOL_ERROR";
}
