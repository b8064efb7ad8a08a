import {
  BackendUnavailableError,
  ScanAbortedError,
  type Scanner,
  type ScanOptions,
  ScanTimeoutError,
} from "@engine/core";
import type { EngineBackends } from "./build-backends.js";

/** What queue mode's `serve` says of its backends until the first `POST /scan` starts them. */
export const backendsNotStartedNote =
  "not started: in queue mode the workers scan the bounties; the first POST /scan starts this process's backends";

/** After a start failed, scans fail at once with its error for this long before one tries again, in ms. */
export const startRetryAfterMs = 5_000;

/** How long `dispose` waits for a start in progress, in ms; what it started is stopped when it ends. */
export const disposeWaitMs = 10_000;

/** {@link EngineBackends} started on first use, and whether they are yet. */
export interface LazyEngineBackends extends EngineBackends {
  /** True once they started (and until they are disposed). */
  readonly started: boolean;
  /** Why the last start failed (its message), while no start has succeeded since. */
  readonly startError: string | undefined;
}

/** Waits for `work`, or rejects when the scan's signal fires or its deadline passes. */
function withinScan<T>(work: Promise<T>, options: ScanOptions | undefined): Promise<T> {
  const { signal, deadline } = options ?? {};
  if (!signal && deadline === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      finish(() =>
        reject(
          new ScanAbortedError({
            message: "the scan was stopped while the backends started",
            scanner: "microengine",
            cause: signal?.reason,
          }),
        ),
      );
    const timer =
      deadline === undefined
        ? undefined
        : setTimeout(
            () =>
              finish(() =>
                reject(
                  new ScanTimeoutError({
                    message: "the deadline passed while the backends started",
                    scanner: "microengine",
                  }),
                ),
              ),
            Math.max(0, deadline - Date.now()),
          );
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}

/**
 * The backends of queue mode's `serve`, started by the first scan (the scan API is their only
 * user there: the workers scan the bounties, and serve's own answers are the deadline
 * watcher's, which scan nothing), so that a receiver starts no clamd and no YARA pool it may
 * never use. Scans that arrive while they start wait for the same start, each within its own
 * deadline and signal. A start that fails fails the scans waiting for it, and those of the next
 * {@link startRetryAfterMs}, with BackendUnavailableError (its cause attached; `startError` and
 * `onStartError` say why); the next scan after that tries again. Until started, `running` and
 * `statuses` are empty and `cache` is `off`; a reload waits for a start in progress, and has
 * nothing to do before. `dispose` waits for a start in progress ({@link disposeWaitMs} at most:
 * what it started is stopped when it ends) and stops what was started.
 */
export function lazyBackends(
  start: () => Promise<EngineBackends>,
  onStartError: (error: unknown) => void = () => {},
): LazyEngineBackends {
  let built: EngineBackends | undefined;
  let starting: Promise<EngineBackends> | undefined;
  let failure: { error: BackendUnavailableError; at: number } | undefined;
  let disposed = false;
  const started = (): Promise<EngineBackends> => {
    if (disposed)
      return Promise.reject(
        new BackendUnavailableError({ message: "the engine is stopping", scanner: "microengine" }),
      );
    if (!starting && failure && Date.now() - failure.at < startRetryAfterMs)
      return Promise.reject(failure.error);
    starting ??= start().then(
      (backends) => {
        built = backends;
        failure = undefined;
        return backends;
      },
      (error: unknown) => {
        starting = undefined;
        onStartError(error);
        const unavailable = new BackendUnavailableError({
          message: `the backends could not start: ${error instanceof Error ? error.message : String(error)}`,
          hint: "See the engine's log; a scan tries to start them again after a few seconds.",
          scanner: "microengine",
          cause: error,
        });
        failure = { error: unavailable, at: Date.now() };
        throw unavailable;
      },
    );
    return starting;
  };
  const scanner: Scanner = {
    name: "microengine",
    scan: async (artifact, options) =>
      (await withinScan(started(), options)).scanner.scan(artifact, options),
    get signaturesVersion() {
      return built?.scanner.signaturesVersion;
    },
    [Symbol.asyncDispose]: async () => {},
  };
  return {
    scanner,
    get multi() {
      if (!built) throw new Error("the backends have not started (queue mode's serve)");
      return built.multi;
    },
    get cache() {
      return built?.cache ?? "off";
    },
    get running() {
      return built?.running ?? [];
    },
    get statuses() {
      return built?.statuses ?? [];
    },
    get started() {
      return built !== undefined && !disposed;
    },
    get startError() {
      return built ? undefined : failure?.error.message;
    },
    reload: async (options) => {
      const backends = starting ? await starting.catch(() => undefined) : undefined;
      return backends && !disposed ? backends.reload(options) : true;
    },
    dispose: async () => {
      disposed = true;
      const pending = starting;
      if (!pending) return;
      const stopped = pending.then((backends) => backends.dispose()).catch(() => {});
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        stopped,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, disposeWaitMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
