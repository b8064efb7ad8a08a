/**
 * Remembers delivery ids and bounty id + phase until the bounty expires, so that a replayed
 * or re-sent bounty is acknowledged without a second scan or a second answer.
 */
export class ReplayCache {
  readonly #seen = new Map<string, number>();

  /** Records the keys; false when any was already seen (a replay). */
  remember(keys: Array<string | undefined>, expiresAt: number): boolean {
    this.#sweep();
    const present = keys.filter((key): key is string => key !== undefined && key.length > 0);
    if (present.some((key) => this.#seen.has(key))) return false;
    for (const key of present) this.#seen.set(key, expiresAt + 60_000);
    return true;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, until] of this.#seen) if (until < now) this.#seen.delete(key);
  }
}
