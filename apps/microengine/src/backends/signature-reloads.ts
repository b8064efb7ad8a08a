import type { Logger } from "pino";
import type { EngineMetrics } from "../operations/metrics.js";
import type { EngineBackend } from "./backend-kind.js";

/** What a reload asks of a running backend: its name, its reload, whether it reads RULES_DIR. */
export type ReloadableBackend = Pick<EngineBackend, "name" | "reload" | "readsRulesDirectory">;

/** What a reload asks for: every backend, or only those that read RULES_DIR (RULES_WATCH). */
export interface ReloadRequest {
  /** Only the backends that read RULES_DIR. Default false. */
  rulesDirectoryOnly?: boolean;
}

/**
 * The engine's signature reloads (SIGHUP, RULES_WATCH): each running backend's `reload`, one
 * backend after the other. Reloads run one at a time, and requests that arrive during one
 * collapse into a single next reload (which reloads every backend when one of them asked for
 * every backend). {@link SignatureReloads.reloading} is true from the start of a reload until
 * it ends: the result cache is bypassed meanwhile.
 */
export class SignatureReloads {
  readonly #backends: readonly ReloadableBackend[];
  readonly #logger: Logger;
  readonly #metrics: Pick<EngineMetrics, "rulesReloadFailures"> | undefined;
  #reloading = false;
  #current: Promise<boolean> | undefined;
  #queued: { promise: Promise<boolean>; rulesDirectoryOnly: boolean } | undefined;

  /**
   * @param backends the running backends, reloaded in this order
   * @param metrics where a reload that throws is counted (`rulesReloadFailures`)
   */
  constructor(
    backends: readonly ReloadableBackend[],
    logger: Logger,
    metrics?: Pick<EngineMetrics, "rulesReloadFailures">,
  ) {
    this.#backends = backends;
    this.#logger = logger;
    this.#metrics = metrics;
  }

  /** True while a reload runs: clamd answers from its old database until its reload ends. */
  get reloading(): boolean {
    return this.#reloading;
  }

  /**
   * Reloads now, or, when a reload is running, in the single reload that follows it. Resolves
   * false when a backend's reload failed.
   */
  reload(request: ReloadRequest = {}): Promise<boolean> {
    const rulesDirectoryOnly = request.rulesDirectoryOnly ?? false;
    const current = this.#current;
    if (!current) {
      const started = this.#reloadOnce({ rulesDirectoryOnly }).finally(() => {
        this.#current = undefined;
      });
      this.#current = started;
      return started;
    }
    // Said, so that an operator whose SIGHUP waits behind a long reload knows why.
    this.#logger.info(
      { queued: this.#queued !== undefined },
      "a reload is already running: this request is served by the next one, when it ends",
    );
    if (this.#queued) {
      this.#queued.rulesDirectoryOnly &&= rulesDirectoryOnly;
      return this.#queued.promise;
    }
    const next = { rulesDirectoryOnly, promise: Promise.resolve(true) };
    const again = (): Promise<boolean> => {
      this.#queued = undefined;
      return this.reload({ rulesDirectoryOnly: next.rulesDirectoryOnly });
    };
    next.promise = current.then(again, again);
    this.#queued = next;
    return next.promise;
  }

  async #reloadOnce(what: { rulesDirectoryOnly: boolean }): Promise<boolean> {
    let ok = true;
    this.#reloading = true;
    try {
      // One after the other: a reload is heavy (YARA compiles, clamd loads its databases).
      for (const backend of this.#backends) {
        if (!backend.reload || (what.rulesDirectoryOnly && !backend.readsRulesDirectory)) continue;
        try {
          ok = (await backend.reload()) && ok;
        } catch (error) {
          // A backend's reload logs and counts its own failures; one that throws anyway must
          // not keep the others from reloading.
          ok = false;
          this.#metrics?.rulesReloadFailures.inc({ backend: backend.name });
          this.#logger.error({ backend: backend.name, err: error }, "signatures NOT reloaded");
        }
      }
    } finally {
      this.#reloading = false;
    }
    return ok;
  }
}
