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
  | "CORRUPT_ARTIFACT"
  | "OVERLOADED";

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
  /**
   * A short reason safe to show to whoever sent the artifact (a webhook answer, an HTTP error):
   * no paths, addresses, hosts, stacks or library internals. Default: the generic reason of the
   * code ({@link publicErrorMessages}).
   */
  publicMessage?: string;
}

/**
 * The short public reason of each code: what an engine may tell the outside world about a
 * failure. The detailed `message` (paths, sockets, addresses) belongs in logs only.
 */
export const publicErrorMessages: Readonly<Record<EngineErrorCode, string>> = {
  ENGINE_ERROR: "internal error",
  INVALID_OPTIONS: "invalid request",
  BACKEND_UNAVAILABLE: "a scanning backend is unavailable",
  SCAN_TIMEOUT: "the scan did not finish in time",
  SCAN_ABORTED: "the scan was stopped",
  ARTIFACT_TOO_LARGE: "the artifact is larger than the size limit",
  ARTIFACT_UNAVAILABLE: "the artifact could not be read",
  PROTOCOL_ERROR: "a scanning backend answered unexpectedly",
  INVALID_RESULT: "a scanning backend gave an invalid answer",
  UNSUPPORTED_ARTIFACT: "this kind of artifact is not supported",
  ENCRYPTED_ARTIFACT: "the artifact is encrypted",
  CORRUPT_ARTIFACT: "the artifact is corrupt",
  OVERLOADED: "the engine is overloaded; retry later",
};

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
  /** A short reason safe to show outside (see {@link EngineErrorOptions.publicMessage}). */
  readonly publicMessage: string;

  constructor(options: EngineErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    const errorClass = new.target as unknown as typeof EngineError;
    this.name = errorClass.name;
    this.code = errorClass.code;
    this.hint = options.hint;
    this.scanner = options.scanner;
    this.publicMessage = options.publicMessage ?? publicErrorMessages[this.code];
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

  /**
   * A plain JSON view (name, code, message, hint, scanner) for logs. Answers to the outside
   * use {@link EngineError.toPublicJSON}: the message may name paths, sockets and hosts.
   */
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

  /** What may be shown outside the process: the code and the short public reason. */
  toPublicJSON(): { code: EngineErrorCode; message: string } {
    return { code: this.code, message: this.publicMessage };
  }
}

/**
 * The public view of anything thrown: an engine error's code and public reason, or
 * `ENGINE_ERROR` / "internal error" for anything else (never its message).
 */
export function publicError(error: unknown): { code: EngineErrorCode; message: string } {
  return EngineError.isInstance(error)
    ? { code: error.code, message: error.publicMessage ?? publicErrorMessages[error.code] }
    : { code: "ENGINE_ERROR", message: publicErrorMessages.ENGINE_ERROR };
}

/**
 * Names `scanner` on an engine error that names none yet, and returns the error. The scanner
 * that an error leaves owns the name, so the code inside it never names itself. An error that
 * cannot be changed (frozen, or `scanner` not configurable) is returned as it is.
 */
export function stampScannerName<T extends EngineError>(error: T, scanner: string): T {
  if (error.scanner !== undefined) return error;
  try {
    const own = Object.getOwnPropertyDescriptor(error, "scanner");
    if (Object.isFrozen(error) || (own && !own.configurable && !own.writable)) return error;
    Object.defineProperty(error, "scanner", {
      value: scanner,
      enumerable: true,
      configurable: true,
    });
  } catch {
    // A proxy or an exotic object: keep it unnamed rather than lose the error.
  }
  return error;
}
