import { BackendUnavailableError, type Scanner } from "@engine/core";
import type { EngineBackends } from "./build-backends.js";

/** What queue mode's `serve` says of its backends until the first `POST /scan` starts them. */
export const backendsNotStartedNote =
  "not started: in queue mode the workers scan the bounties; the first POST /scan starts this process's backends";

/** {@link EngineBackends} started on first use, and whether they are yet. */
export interface LazyEngineBackends extends EngineBackends {
  /** True once they started (and until they are disposed). */
  readonly started: boolean;
}

/**
 * The backends of queue mode's `serve`, started by the first scan (the scan API is their only
 * user there: the workers scan the bounties, and serve's own answers are the deadline
 * watcher's, which scan nothing), so that a receiver starts no clamd and no YARA pool it may
 * never use. Scans that arrive while they start wait for the same start. A start that fails
 * fails those scans with BackendUnavailableError (its cause attached) and is tried again by
 * the next one. Until then `running` and `statuses` are empty, `cache` is `off`, and a reload
 * has nothing to do; `dispose` waits for a start in progress and stops what it started.
 */
export function lazyBackends(start: () => Promise<EngineBackends>): LazyEngineBackends {
  let built: EngineBackends | undefined;
  let starting: Promise<EngineBackends> | undefined;
  let disposed = false;
  const started = (): Promise<EngineBackends> => {
    if (disposed)
      return Promise.reject(
        new BackendUnavailableError({ message: "the engine is stopping", scanner: "microengine" }),
      );
    starting ??= start().then(
      (backends) => {
        built = backends;
        return backends;
      },
      (error: unknown) => {
        starting = undefined;
        throw new BackendUnavailableError({
          message: `the backends could not start: ${error instanceof Error ? error.message : String(error)}`,
          hint: "See the engine's log; the next scan tries to start them again.",
          scanner: "microengine",
          cause: error,
        });
      },
    );
    return starting;
  };
  const scanner: Scanner = {
    name: "microengine",
    scan: async (artifact, options) => (await started()).scanner.scan(artifact, options),
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
    reload: async (options) => (built ? built.reload(options) : true),
    dispose: async () => {
      disposed = true;
      const pending = starting;
      if (pending) await pending.then((backends) => backends.dispose()).catch(() => {});
    },
  };
}
