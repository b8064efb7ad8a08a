import { constants } from "node:os";

/** The signals that stop a scan cleanly. */
export const scanStopSignals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** A scan's stop on SIGINT, SIGTERM or SIGHUP; see {@link stopOnScanSignals}. */
export interface ScanStop {
  /** Aborted at the first signal. */
  readonly signal: AbortSignal;
  /** The first signal received, if any. */
  received(): NodeJS.Signals | undefined;
  /** Removes the handlers (a signal after that acts as Node's default). */
  release(): void;
}

/** 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

/**
 * Handles SIGINT, SIGTERM and SIGHUP for `scan`: the first aborts `signal` (the walk stops,
 * the scans in flight are aborted, the report so far is ended and the backends disposed of,
 * which stops a managed clamd and removes its directory; the caller then exits with
 * {@link signalExitCode}). A second signal while that runs exits at once with its code.
 */
export function stopOnScanSignals(
  onFirst?: (signal: NodeJS.Signals) => void,
  exit: (code: number) => void = (code) => process.exit(code),
): ScanStop {
  const controller = new AbortController();
  let first: NodeJS.Signals | undefined;
  const handler = (signal: NodeJS.Signals): void => {
    if (first !== undefined) {
      exit(signalExitCode(signal));
      return;
    }
    first = signal;
    onFirst?.(signal);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  for (const name of scanStopSignals) process.on(name, handler);
  return {
    signal: controller.signal,
    received: () => first,
    release: () => {
      for (const name of scanStopSignals) process.off(name, handler);
    },
  };
}
