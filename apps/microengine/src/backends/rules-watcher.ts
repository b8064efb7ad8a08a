import { createHash } from "node:crypto";
import { type FSWatcher, readdirSync, statSync, watch } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import type { EngineBackends } from "./build-backends.js";

/** How long the rules must stay unchanged before a reload, in ms: an editor or rsync writes in bursts. */
export const rulesWatchDebounceMs = 500;

/** How often the watcher checks that RULES_DIR is still the directory it watches, in ms. */
export const rulesDirectoryCheckMs = 2_000;

/** The most entries the periodic check looks at (a rules tree is hundreds of files). */
const fingerprintEntries = 20_000;

/**
 * A fingerprint of the tree under `directory`: each entry's path, inode, size and mtime. It
 * changes with any edit, rename or replacement, including the ones a recursive watch misses
 * (a subdirectory swapped for another, a directory recreated on a reused inode).
 */
function treeFingerprint(directory: string): string | undefined {
  const hash = createHash("sha256");
  let seen = 0;
  const visit = (path: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(path).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (++seen > fingerprintEntries || depth > 32) return;
      const child = join(path, name);
      try {
        const info = statSync(child);
        hash.update(`${child}\0${info.ino}\0${info.size}\0${info.mtimeMs}\0${info.birthtimeMs}\n`);
        if (info.isDirectory()) visit(child, depth + 1);
      } catch {
        hash.update(`${child}\0gone\n`);
      }
    }
  };
  try {
    const root = statSync(directory);
    if (!root.isDirectory()) return undefined;
    hash.update(`${root.ino}\0${root.birthtimeMs}\n`);
  } catch {
    return undefined;
  }
  visit(directory, 0);
  return hash.digest("hex");
}

/** The identity of `directory` (device, inode, birth time), or undefined when it is not one now. */
function directoryIdentity(directory: string): string | undefined {
  try {
    const info = statSync(directory);
    return info.isDirectory() ? `${info.dev}:${info.ino}:${info.birthtimeMs}` : undefined;
  } catch {
    return undefined;
  }
}

/** What the watcher needs of the engine's backends: whether one reads RULES_DIR, and reloads. */
type WatchedBackends = Pick<EngineBackends, "running" | "reload">;

/**
 * RULES_WATCH: reloads the YARA rules when a file under RULES_DIR changes, once the changes
 * have stopped for {@link rulesWatchDebounceMs} (clamd's databases are left to SIGHUP). A
 * RULES_DIR replaced as a whole (a new directory renamed into place, as deploy tools do) is
 * noticed within {@link rulesDirectoryCheckMs}: the watch moves to the new one and the rules
 * reload. Every {@link rulesDirectoryCheckMs} the tree's fingerprint is compared too, which
 * catches what the watch misses (a subdirectory replaced, a directory recreated on the same
 * inode). A reload that fails keeps the last good rules (see `EngineBackends.reload`).
 */
export function watchRules(
  config: Pick<EngineConfig, "RULES_DIR">,
  backends: WatchedBackends,
  logger: Logger,
): { close(): void } {
  const directory = config.RULES_DIR;
  if (!directory || !backends.running.some((backend) => backend.readsRulesDirectory)) {
    logger.warn("RULES_WATCH: nothing to watch (set RULES_DIR and run yara); SIGHUP still reloads");
    return { close: () => {} };
  }
  const watcher = new RulesDirectoryWatcher(directory, backends, logger);
  logger.info({ directory }, "RULES_WATCH: reloading the YARA rules when RULES_DIR changes");
  return { close: () => watcher.close() };
}

/** The watch on one RULES_DIR, its periodic check, and the debounced reload they ask for. */
class RulesDirectoryWatcher {
  readonly #directory: string;
  readonly #backends: WatchedBackends;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #watcher: FSWatcher | undefined;
  #watched: string | undefined; // device:inode:birth of the directory being watched
  #fingerprint: string | undefined;
  readonly #check: NodeJS.Timeout;

  constructor(directory: string, backends: WatchedBackends, logger: Logger) {
    this.#directory = directory;
    this.#backends = backends;
    this.#logger = logger;
    this.#fingerprint = treeFingerprint(directory);
    this.#arm();
    this.#check = setInterval(() => this.#compare(), rulesDirectoryCheckMs);
    this.#check.unref();
  }

  close(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#check);
    this.#watcher?.close();
  }

  #changed(why: string): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      // What this reload reads: no second one for it.
      this.#fingerprint = treeFingerprint(this.#directory);
      this.#logger.info(
        { directory: this.#directory, why },
        "RULES_WATCH: rules changed; reloading YARA",
      );
      this.#backends.reload({ rulesDirectoryOnly: true }).catch(() => {});
    }, rulesWatchDebounceMs);
  }

  #arm(): void {
    const directory = this.#directory;
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#watched = directoryIdentity(directory);
    if (!this.#watched) return; // gone for now: the check below arms again when it is back
    try {
      this.#watcher = watch(directory, { recursive: true, persistent: false }, () =>
        this.#changed("a file"),
      );
      this.#watcher.on("error", (error) => {
        this.#logger.warn(
          { err: error, directory },
          "RULES_WATCH: the watch failed; watching again",
        );
        this.#watched = undefined;
      });
    } catch (error) {
      this.#logger.error(
        { err: error, directory },
        "RULES_WATCH: cannot watch RULES_DIR; SIGHUP still reloads",
      );
    }
  }

  /** The periodic check: RULES_DIR replaced, or its tree changed behind the watch's back. */
  #compare(): void {
    const now = directoryIdentity(this.#directory);
    const print = treeFingerprint(this.#directory);
    if (now !== this.#watched) {
      this.#arm();
      if (now) this.#changed("RULES_DIR was replaced");
    } else if (print !== this.#fingerprint) {
      this.#arm();
      this.#changed("the rules tree changed");
    }
    this.#fingerprint = print;
  }
}
