import {
  type EngineError,
  errorFromSignal,
  raceSignal,
  type Scanner,
  ScanTimeoutError,
} from "@engine/core";
import { asEngineError } from "./as-engine-error.js";

/**
 * The setups of a multi-engine's backends. Each backend's `setup` runs once at a time, shared
 * by every scan and `setup()` that needs it, and each of those waits for it only until its own
 * signal fires (the backend's budget): a setup that hangs (a stopped clamd accepts connections
 * and never answers) holds no scan and no `close` past that.
 */
export interface BackendSetups {
  /**
   * Backends whose latest setup failed, or had not finished when a scan or `setup()` stopped
   * waiting for it, with why; a backend's entry goes when its setup succeeds.
   */
  readonly failures: ReadonlyMap<string, EngineError>;
  /** True when `backend`'s setup succeeded and it was not closed since. */
  isReady(backend: Scanner): boolean;
  /**
   * Starts `backend`'s setup unless it runs or succeeded, and waits for it until `signal`
   * fires. Rejects with the setup's error, the signal's abort, or, when the signal timed out
   * first, a {@link ScanTimeoutError} saying the setup did not finish (the setup goes on).
   */
  waitFor(backend: Scanner, signal: AbortSignal): Promise<void>;
  /**
   * Closes `backend` without waiting for a setup that has not finished: that backend is
   * closed once its setup settles, before it is set up again.
   */
  close(backend: Scanner): Promise<void>;
}

/** Tracks the setups of one multi-engine's backends; see {@link BackendSetups}. */
export function trackBackendSetups(): BackendSetups {
  const ready = new Set<Scanner>();
  const running = new Map<Scanner, Promise<void>>();
  /** A close deferred until a hung setup settled: the next setup starts after it. */
  const closing = new Map<Scanner, Promise<void>>();
  const failures = new Map<string, EngineError>();

  const start = (backend: Scanner): Promise<void> => {
    const current = running.get(backend);
    if (current) return current;
    const run: Promise<void> = (closing.get(backend) ?? Promise.resolve())
      .then(() => backend.setup?.())
      .then(
        () => {
          if (running.get(backend) !== run) return; // closed meanwhile: not ready
          running.delete(backend);
          ready.add(backend);
          failures.delete(backend.name);
        },
        (error: unknown) => {
          const failure = asEngineError(error, backend.name);
          if (running.get(backend) === run) {
            running.delete(backend);
            failures.set(backend.name, failure);
          }
          throw failure;
        },
      );
    run.catch(() => {}); // its waiters get the error; nobody may be waiting any more
    running.set(backend, run);
    return run;
  };

  const waitFor = async (backend: Scanner, signal: AbortSignal): Promise<void> => {
    if (ready.has(backend)) return;
    const started = performance.now();
    const setup = start(backend);
    try {
      await raceSignal(setup, signal, backend.name);
    } catch (error) {
      const stopped = signal.aborted && running.get(backend) === setup;
      if (!stopped || !ScanTimeoutError.isInstance(errorFromSignal(signal))) throw error;
      const failure = setupTimeout(backend.name, performance.now() - started, error);
      failures.set(backend.name, failure);
      throw failure;
    }
  };

  const close = async (backend: Scanner): Promise<void> => {
    ready.delete(backend);
    const setup = running.get(backend);
    running.delete(backend);
    if (setup === undefined) {
      // A close deferred after a hung setup already covers it; waiting for it would hang.
      if (!closing.has(backend)) await backend.close?.();
      return;
    }
    const deferred = setup
      .catch(() => {})
      .then(() => backend.close?.())
      .catch(() => {})
      .finally(() => {
        if (closing.get(backend) === deferred) closing.delete(backend);
      });
    closing.set(backend, deferred);
  };

  return { failures, isReady: (backend) => ready.has(backend), waitFor, close };
}

/** The failure of a backend whose setup had not finished when its budget ran out. */
function setupTimeout(scanner: string, waitedMs: number, cause: unknown): ScanTimeoutError {
  return new ScanTimeoutError({
    message: `@engine/multi: ${scanner} did not finish setting up within ${Math.round(waitedMs)} ms (its backendTimeoutMs or the scan's deadline); it counts as failed`,
    hint: "Check that the backend is running and answering (a stopped clamd accepts connections and never answers); a later scan waits for the same setup again. Raise backendTimeoutMs if its setup is only slow.",
    publicMessage: "a scanning backend did not finish setting up in time",
    cause,
    scanner,
  });
}
