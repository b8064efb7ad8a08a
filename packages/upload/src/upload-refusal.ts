import type { UploadProblemCode } from "./problems.js";

/**
 * Thrown inside the guard when a request is refused as a whole (a limit, the scanner failing,
 * the deadline, the client gone, storage failing); it becomes the outcome's problem. Its
 * `cause` is for logs only.
 */
export class UploadRefusal extends Error {
  readonly code: UploadProblemCode;

  constructor(code: UploadProblemCode, options: { cause?: unknown; detail?: string } = {}) {
    super(options.detail ?? `upload refused: ${code}`, { cause: options.cause });
    this.name = "UploadRefusal";
    this.code = code;
  }
}
