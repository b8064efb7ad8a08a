/**
 * Remembers delivery ids and bounty id + phase until the bounty expires, so that a replayed
 * or re-sent bounty is acknowledged without a second scan or a second answer.
 */
export class ReplayCache {
  readonly #seen = new Map<string, number>();
  #sweptAt = 0;

  /** @param maxKeys keys kept at most; past it the oldest go first (a replay of those is scanned and answered again, with the same Idempotency-Key). Default 250,000. */
  constructor(private readonly maxKeys = 250_000) {}

  /** Records the keys; false when any was already seen (a replay). */
  remember(keys: Array<string | undefined>, expiresAt: number): boolean {
    this.#sweep();
    const present = keys.filter((key): key is string => key !== undefined && key.length > 0);
    if (present.some((key) => this.#seen.has(key))) return false;
    for (const key of present) this.#seen.set(key, expiresAt + 60_000);
    for (const oldest of this.#seen.keys()) {
      if (this.#seen.size <= this.maxKeys) break;
      this.#seen.delete(oldest);
    }
    return true;
  }

  /** Drops expired keys, at most once a second (a flood must not make each call O(n)). */
  #sweep(): void {
    const now = Date.now();
    if (now - this.#sweptAt < 1000) return;
    this.#sweptAt = now;
    for (const [key, until] of this.#seen) if (until < now) this.#seen.delete(key);
  }
}
