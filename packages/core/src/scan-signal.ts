import { EngineError } from "./errors/engine-error.js";
import { ScanAbortedError } from "./errors/scan-aborted-error.js";
import { ScanTimeoutError } from "./errors/scan-timeout-error.js";

/** Longest delay `setTimeout` accepts (about 24.8 days); later deadlines are clamped to it. */
const maximumTimerDelay = 2 ** 31 - 1;

/**
 * The typed error that explains why `signal` fired: the reason itself when it is already an
 * engine error, {@link ScanTimeoutError} for `AbortSignal.timeout()` reasons, otherwise
 * {@link ScanAbortedError} with the reason as `cause`.
 * @param signal an aborted signal
 * @param scanner name of the scanner, for the message
 */
export function errorFromSignal(signal: AbortSignal, scanner?: string): EngineError {
  const reason: unknown = signal.reason;
  if (EngineError.isInstance(reason)) return reason;
  const who = scanner === undefined ? "the scan" : `the scan by ${scanner}`;
  if (reason instanceof DOMException && reason.name === "TimeoutError") {
    return new ScanTimeoutError({
      message: `@engine/core: ${who} timed out`,
      hint: "Give the scan a later deadline, or a smaller artifact.",
      cause: reason,
      scanner,
    });
  }
  return new ScanAbortedError({
    message: `@engine/core: ${who} was aborted by the caller`,
    cause: reason,
    scanner,
  });
}

/**
 * One signal for one scan: fires when the caller's signal fires or when the absolute
 * `deadline` (epoch milliseconds) passes, with a typed reason ({@link ScanAbortedError} or
 * {@link ScanTimeoutError}). Dispose it (or use `using`) to clear its timer.
 */
export interface ScanSignal extends Disposable {
  /** Fires on abort or deadline; its `reason` is an engine error. */
  readonly signal: AbortSignal;
  /** The absolute deadline in epoch milliseconds, when one was given. */
  readonly deadline: number | undefined;
  /** Milliseconds left before the deadline (`Infinity` without one, never negative). */
  remainingMs(): number;
  /** Throws the typed reason when the signal has fired. */
  throwIfStopped(): void;
}

/** Options of {@link createScanSignal}: the caller's stop conditions. */
export interface ScanSignalOptions {
  /** The caller's signal. */
  signal?: AbortSignal | undefined;
  /** Absolute deadline in epoch milliseconds (`Date.now() + 2000`). */
  deadline?: number | undefined;
  /** Scanner name, used in error messages. */
  scanner?: string | undefined;
}

/** Combines a caller's `signal` and `deadline` into one {@link ScanSignal}. */
export function createScanSignal(options: ScanSignalOptions = {}): ScanSignal {
  const { signal: parent, deadline, scanner } = options;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;

  const onParentAbort = (): void => {
    if (parent) controller.abort(errorFromSignal(parent, scanner));
  };
  const onDeadline = (): void => {
    const late = deadline === undefined ? 0 : Date.now() - deadline;
    controller.abort(
      new ScanTimeoutError({
        message: `@engine/core: ${scanner ?? "the scan"} passed its deadline${late > 0 ? ` by ${late} ms` : ""}`,
        hint: "Give the scan a later deadline (epoch milliseconds), or a smaller artifact.",
        scanner,
      }),
    );
  };

  if (parent?.aborted) onParentAbort();
  else if (deadline !== undefined && deadline <= Date.now()) onDeadline();
  else {
    parent?.addEventListener("abort", onParentAbort, { once: true });
    if (deadline !== undefined) {
      timer = setTimeout(onDeadline, Math.min(deadline - Date.now(), maximumTimerDelay));
    }
  }

  const dispose = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
  };
  controller.signal.addEventListener("abort", dispose, { once: true });

  return {
    signal: controller.signal,
    deadline,
    remainingMs: () =>
      deadline === undefined ? Number.POSITIVE_INFINITY : Math.max(0, deadline - Date.now()),
    throwIfStopped: () => {
      if (controller.signal.aborted) throw errorFromSignal(controller.signal, scanner);
    },
    [Symbol.dispose]: dispose,
  };
}

/**
 * Settles like `promise`, or rejects with the signal's typed reason as soon as `signal`
 * fires, whichever comes first. The work behind `promise` is not stopped by this: it is the
 * safety net that keeps a caller's deadline even when a backend ignores its signal.
 */
export function raceSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  scanner?: string,
): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(errorFromSignal(signal, scanner));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => {});
      reject(errorFromSignal(signal, scanner));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
