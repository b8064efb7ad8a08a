import type { ClamavScanner } from "@engine/clamav";
import type { ManagedClamd } from "@engine/clamav/managed";
import type { Logger } from "pino";
import type { EngineMetrics } from "../../operations/metrics.js";

/** How long the managed clamd may take to reload its databases before the reload counts as failed, in ms. */
const clamdReloadLimitMs = 300_000;

/**
 * Watches the managed clamd's log after `offset` (its length before RELOAD; the whole log when
 * it was rotated since) until the reload succeeds or fails, or `limitMs` passes.
 */
async function clamdReloadOutcome(
  managed: ManagedClamd,
  offset: number,
  limitMs: number,
): Promise<"reloaded" | "failed" | "timeout"> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const log = await managed.log().catch(() => "");
    const recent = log.length >= offset ? log.slice(offset) : log;
    if (/Database correctly reloaded/.test(recent)) return "reloaded";
    // clamd 1.x: "ERROR: reload_th: Database load failed: ..." then "WARNING: Database
    // reload failed, keeping the previous instance".
    if (/Database (re)?load failed/i.test(recent)) return "failed";
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return "timeout";
}

/**
 * The managed clamd's database reloads (SIGHUP): the databases relinked (freshclam replaces
 * and renames files), then RELOAD, waiting up to 300 s for clamd's log to confirm it. Until
 * clamd confirmed loading them, the new files are not in the cache key and, after a reload
 * that failed or was not confirmed, the cache stays bypassed until one succeeds.
 */
export class ManagedClamdReloads {
  readonly #clamav: ClamavScanner;
  readonly #managed: ManagedClamd;
  readonly #logger: Logger;
  readonly #metrics: EngineMetrics | undefined;
  // The managed clamd's database hash in the cache key is the one clamd confirmed loading:
  // relinking changes the files at once, clamd loads them later (or fails to and keeps the old).
  #confirmedDatabaseHash: string;
  // After a reload that failed or was not confirmed, what clamd runs is not known: its answers
  // are not cached until a reload succeeds.
  #databaseUnconfirmed = false;

  constructor(
    clamav: ClamavScanner,
    managed: ManagedClamd,
    logger: Logger,
    metrics: EngineMetrics | undefined,
  ) {
    this.#clamav = clamav;
    this.#managed = managed;
    this.#logger = logger;
    this.#metrics = metrics;
    this.#confirmedDatabaseHash = managed.signaturesVersion;
  }

  /** The hash of the database files clamd last confirmed loading (part of the cache key). */
  get confirmedDatabaseHash(): string {
    return this.#confirmedDatabaseHash;
  }

  /** True from a relink until clamd confirms loading it: its answers are not cached meanwhile. */
  get databaseUnconfirmed(): boolean {
    return this.#databaseUnconfirmed;
  }

  /** Relinks and reloads; logs and counts the outcome. Resolves false when it failed. */
  async reload(): Promise<boolean> {
    const { name } = this.#clamav;
    try {
      await this.#relinkAndReload();
      this.#metrics?.signaturesReloads.inc({ backend: name });
      this.#logger.info(
        {
          backend: name,
          database: this.#clamav.signaturesVersion ?? this.#managed.signaturesVersion,
        },
        "clamd databases reloaded",
      );
      return true;
    } catch (error) {
      this.#metrics?.rulesReloadFailures.inc({ backend: name });
      this.#logger.error({ backend: name, err: error }, "clamd databases NOT reloaded");
      return false;
    }
  }

  async #relinkAndReload(): Promise<void> {
    const managed = this.#managed;
    const offset = (await managed.log()).length;
    // freshclam replaces and renames files in /var/lib/clamav: link what is there now.
    await managed.relinkDatabases();
    this.#databaseUnconfirmed = true;
    await this.#clamav.reload();
    // clamd answers RELOAD at once and loads in the background: wait for the end.
    const outcome = await clamdReloadOutcome(managed, offset, clamdReloadLimitMs);
    if (outcome !== "reloaded")
      throw new Error(
        outcome === "failed"
          ? "clamd could not load the databases (see its log); it keeps the old ones, and the result cache stays bypassed until a reload succeeds"
          : `clamd did not finish reloading its databases within ${clamdReloadLimitMs / 1000} s; the result cache stays bypassed until a reload succeeds`,
      );
    this.#confirmedDatabaseHash = managed.signaturesVersion;
    this.#databaseUnconfirmed = false;
  }
}
