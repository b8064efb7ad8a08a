import {
  BackendUnavailableError,
  createScanSignal,
  raceSignal,
  type Scanner,
  type ScanOptions,
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

/** Waits for `work`, or rejects when the scan's signal fires or its deadline passes (typed). */
async function withinScan<T>(work: Promise<T>, options: ScanOptions | undefined): Promise<T> {
  using stop = createScanSignal({
    signal: options?.signal,
    deadline: options?.deadline,
    scanner: "microengine",
  });
  return await raceSignal(work, stop.signal, "microengine");
}

/** One start of the backends at a time, its outcome, and the wait before a failed one is tried again. */
class BackendsStart {
  built: EngineBackends | undefined;
  starting: Promise<EngineBackends> | undefined;
  failure: { error: BackendUnavailableError; at: number } | undefined;
  disposed = false;

  constructor(
    private readonly start: () => Promise<EngineBackends>,
    private readonly onStartError: (error: unknown) => void,
  ) {}

  /** The started backends: this start, the one in progress, or a new one. */
  started(): Promise<EngineBackends> {
    if (this.disposed)
      return Promise.reject(
        new BackendUnavailableError({ message: "the engine is stopping", scanner: "microengine" }),
      );
    if (!this.starting && this.failure && Date.now() - this.failure.at < startRetryAfterMs)
      return Promise.reject(this.failure.error);
    this.starting ??= this.start().then(
      (backends) => {
        this.built = backends;
        this.failure = undefined;
        return backends;
      },
      (error: unknown) => {
        this.starting = undefined;
        this.onStartError(error);
        const unavailable = new BackendUnavailableError({
          message: `the backends could not start: ${error instanceof Error ? error.message : String(error)}`,
          hint: "See the engine's log; a scan tries to start them again after a few seconds.",
          scanner: "microengine",
          cause: error,
        });
        this.failure = { error: unavailable, at: Date.now() };
        throw unavailable;
      },
    );
    return this.starting;
  }

  /** Stops what was started, waiting {@link disposeWaitMs} at most for a start in progress. */
  async dispose(): Promise<void> {
    this.disposed = true;
    const pending = this.starting;
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
  }
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
  const state = new BackendsStart(start, onStartError);
  const scanner: Scanner = {
    name: "microengine",
    scan: async (artifact, options) =>
      (await withinScan(state.started(), options)).scanner.scan(artifact, options),
    get signaturesVersion() {
      return state.built?.scanner.signaturesVersion;
    },
    [Symbol.asyncDispose]: async () => {},
  };
  return {
    scanner,
    get multi() {
      if (!state.built) throw new Error("the backends have not started (queue mode's serve)");
      return state.built.multi;
    },
    get cache() {
      return state.built?.cache ?? "off";
    },
    get running() {
      return state.built?.running ?? [];
    },
    get statuses() {
      return state.built?.statuses ?? [];
    },
    get started() {
      return state.built !== undefined && !state.disposed;
    },
    get startError() {
      return state.built ? undefined : state.failure?.error.message;
    },
    reload: async (options) => {
      const backends = state.starting ? await state.starting.catch(() => undefined) : undefined;
      return backends && !state.disposed ? backends.reload(options) : true;
    },
    dispose: () => state.dispose(),
  };
}
