/**
 * A counting semaphore whose waiters leave the queue when their signal fires: it bounds the
 * number of concurrent clamd sessions.
 */
export class ConnectionSlots {
  #free: number;
  readonly #waiters: Array<() => void> = [];

  /** @param size number of slots */
  constructor(size: number) {
    this.#free = size;
  }

  /** Takes a slot, waiting for one if needed; rejects with the signal's reason on abort. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#free > 0) {
      this.#free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener("abort", onAbort);
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
    else this.#free += 1;
  }
}
