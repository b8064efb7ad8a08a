/**
 * Counts what a client may be talking to, as it sees it: a new generation begins with every
 * scan connection it opens. A restart of clamd (with a clamd.conf that may have changed) drops
 * every connection, so it always shows as a new generation; so does a connection that reaches
 * another daemon behind the same address while older connections to the first are still open
 * (a rolling update). What was checked of a daemon's settings (`checkClamdAlerts`) holds
 * within one generation. Kept sessions are reused, so under steady load generations are rare.
 */
export class DaemonGeneration {
  #live = 0;
  #generation = 0;

  /** The current generation (0 before the first connection). */
  get current(): number {
    return this.#generation;
  }

  /** Begins a new generation with no connection (the anchor was lost during a call). */
  begin(): void {
    this.#generation += 1;
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
    this.#generation += 1;
    return this.joined();
  }

  /**
   * Records a connection known to reach the daemon of the current generation (a FILDES call
   * made while the client's anchor connection stays open: see `ClamdSessionPool.fildesCall`),
   * without beginning a new generation; returns the function that records its end.
   */
  joined(): () => void {
    this.#live += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#live -= 1;
    };
  }
}
