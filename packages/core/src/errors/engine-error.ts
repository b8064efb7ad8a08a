const engineErrorMarker = Symbol.for("@engine/core/error");

/** Stable machine-readable codes of every error the engine packages throw. */
export type EngineErrorCode =
  | "ENGINE_ERROR"
  | "INVALID_OPTIONS"
  | "BACKEND_UNAVAILABLE"
  | "SCAN_TIMEOUT"
  | "SCAN_ABORTED"
  | "ARTIFACT_TOO_LARGE"
  | "ARTIFACT_UNAVAILABLE"
  | "PROTOCOL_ERROR"
  | "INVALID_RESULT"
  | "UNSUPPORTED_ARTIFACT"
  | "ENCRYPTED_ARTIFACT"
  | "CORRUPT_ARTIFACT";

/** What every engine error constructor accepts. */
export interface EngineErrorOptions {
  /** What went wrong, starting with the package name (`"@engine/clamav: ..."`). */
  message: string;
  /** What the user can do about it (a command, an option, a variable to set). */
  hint?: string;
  /** The lower-level error this one wraps (socket error, zod error, ...). */
  cause?: unknown;
  /** The `Scanner.name` of the backend that failed, when one did. */
  scanner?: string;
}

/**
 * Base class of every error thrown by `@engine/*` packages.
 *
 * Check with `EngineError.isInstance(error)` (or `BackendUnavailableError.isInstance(error)`)
 * rather than `instanceof`: the check uses a `Symbol.for` marker and the stable
 * {@link EngineError.code}, so it survives two copies of `@engine/core` in one `node_modules`.
 * Every error maps to an `unknown` verdict with a comment through `scanResultForError`.
 */
export class EngineError extends Error {
  /** The code of errors of this class; subclasses override it. */
  static readonly code: EngineErrorCode = "ENGINE_ERROR";

  /** Stable code, safe to compare and to use as a metrics label. */
  readonly code: EngineErrorCode;
  /** What the user can do about it; `undefined` when nothing can be done. */
  readonly hint: string | undefined;
  /** Name of the scanner that failed, when known. */
  readonly scanner: string | undefined;

  constructor(options: EngineErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    const errorClass = new.target as unknown as typeof EngineError;
    this.name = errorClass.name;
    this.code = errorClass.code;
    this.hint = options.hint;
    this.scanner = options.scanner;
    Object.defineProperty(this, engineErrorMarker, { value: true });
  }

  /**
   * True when `value` is an error of this class (by its code) from any copy of `@engine/core`.
   * `EngineError.isInstance` accepts every engine error.
   */
  static isInstance<T extends EngineError>(
    this: { readonly code: EngineErrorCode; readonly prototype: T },
    value: unknown,
  ): value is T {
    if (typeof value !== "object" || value === null) return false;
    if ((value as Record<symbol, unknown>)[engineErrorMarker] !== true) return false;
    // biome-ignore lint/complexity/noThisInStatic: `this` is the subclass isInstance was called on
    return this.code === "ENGINE_ERROR" || (value as { code?: unknown }).code === this.code;
  }

  /** A plain JSON view (name, code, message, hint, scanner) for logs and HTTP answers. */
  toJSON(): {
    name: string;
    code: EngineErrorCode;
    message: string;
    hint?: string;
    scanner?: string;
  } {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.scanner === undefined ? {} : { scanner: this.scanner }),
    };
  }
}
