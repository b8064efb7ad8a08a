import { OverloadedError } from "./errors/overloaded-error.js";

/** Options of a {@link ConcurrencyLimit}. */
export interface ConcurrencyLimitOptions {
  /** Holders at once (a whole number >= 1). */
  concurrency: number;
  /** Callers that may wait for a slot; one more is refused with `OverloadedError`. Default: no limit. */
  maxWaiting?: number;
  /** Names what is limited in errors, e.g. `"clamd connections"`. */
  what?: string;
}

/**
 * A counting semaphore with a bounded FIFO queue: at most `concurrency` holders, at most
 * `maxWaiting` waiters (the next caller gets `OverloadedError` at once), and a waiter whose
 * signal fires leaves the queue. A signal that is already aborted never takes a slot, and a
 * slot granted to a waiter that was aborted meanwhile is handed on.
 *
 * @example
 * const limit = new ConcurrencyLimit({ concurrency: 4, maxWaiting: 100 });
 * await limit.acquire(signal);
 * try { await work(); } finally { limit.release(); }
 */
export class ConcurrencyLimit {
  /** Holders at once. */
  readonly concurrency: number;
  /** Waiters allowed (Infinity when unbounded). */
  readonly maxWaiting: number;
  readonly #what: string;
  #running = 0;
  readonly #waiters: Array<() => void> = [];

  constructor(options: ConcurrencyLimitOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new RangeError("ConcurrencyLimit: concurrency must be a whole number >= 1");
    this.concurrency = options.concurrency;
    this.maxWaiting = options.maxWaiting ?? Number.POSITIVE_INFINITY;
    this.#what = options.what ?? "slots";
  }

  /** Slots held now. */
  get running(): number {
    return this.#running;
  }

  /** Slots free now. */
  get free(): number {
    return this.concurrency - this.#running;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes a slot when one is free now; false otherwise (never waits). */
  tryAcquire(): boolean {
    if (this.#running >= this.concurrency) return false;
    this.#running += 1;
    return true;
  }

  /**
   * Takes a slot, waiting FIFO for one if needed. Rejects with the signal's reason when it
   * fires (also when it already has), and with `OverloadedError` when `maxWaiting` callers
   * already wait.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire()) return Promise.resolve();
    if (this.#waiters.length >= this.maxWaiting) {
      return Promise.reject(
        new OverloadedError({
          message: `@engine/core: all ${this.concurrency} ${this.#what} are busy and ${this.#waiters.length} callers already wait`,
          hint: "Retry later, or raise the concurrency or the queue limit.",
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener("abort", onAbort);
        if (signal?.aborted) {
          // Aborted but not told yet: pass the slot to the next waiter.
          this.release();
          reject(signal.reason);
          return;
        }
        resolve();
      };
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(grant);
        if (index !== -1) this.#waiters.splice(index, 1);
        reject(signal?.reason);
      };
      this.#waiters.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Gives a slot back, to the longest waiter first. */
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else if (this.#running > 0) this.#running -= 1;
  }
}
