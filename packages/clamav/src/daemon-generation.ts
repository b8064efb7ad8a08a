/**
 * Counts the lives of one clamd as a client sees them: a new generation begins whenever the
 * client connects while it holds no other connection to that clamd. clamd drops every
 * connection when it stops, so each restart (with a clamd.conf that may have changed) begins a
 * new generation; what was checked of a daemon's settings (`checkClamdAlerts`) holds within one.
 */
export class DaemonGeneration {
  #live = 0;
  #generation = 0;

  /** The current generation (0 before the first connection). */
  get current(): number {
    return this.#generation;
  }

  /** Connections (and FILDES calls) open now. */
  get live(): number {
    return this.#live;
  }

  /**
   * Records a connection that is now open; returns the function that records its end (call it
   * once, on close or failure; later calls do nothing).
   */
  opened(): () => void {
    if (this.#live === 0) this.#generation += 1;
    this.#live += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#live -= 1;
    };
  }
}
