/**
 * One waiter woken at the next change: {@link wait} resolves at the next {@link notify} (a
 * `notify` with nobody waiting is not kept: the waiter checks its state before it waits).
 */
export class NextChange {
  #wake: (() => void) | undefined;

  /** Resolves at the next {@link notify}. */
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  notify(): void {
    this.#wake?.();
    this.#wake = undefined;
  }
}
