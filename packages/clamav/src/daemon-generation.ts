/**
 * Counts what a client may be talking to, as it sees it: a new generation begins with every
 * scan connection it opens. A restart of clamd (with a clamd.conf that may have changed) drops
 * every connection, so it always shows as a new generation; so does a connection that reaches
 * another daemon behind the same address while older connections to the first are still open
 * (a rolling update). What was checked of a daemon's settings (`checkClamdAlerts`) holds
 * within one generation. Kept sessions are reused, so under steady load generations are rare.
 */
export class DaemonGeneration {
  #generation = 0;

  /** The current generation (0 before the first connection). */
  get current(): number {
    return this.#generation;
  }

  /** Records a scan connection that is now open: a new generation begins. */
  opened(): void {
    this.#generation += 1;
  }
}
