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
  config: EngineConfig,
  backends: EngineBackends,
  logger: Logger,
): { close(): void } {
  const directory = config.RULES_DIR;
  if (!directory || !backends.running.some((backend) => backend.readsRulesDirectory)) {
    logger.warn("RULES_WATCH: nothing to watch (set RULES_DIR and run yara); SIGHUP still reloads");
    return { close: () => {} };
  }
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  let watched: string | undefined; // device:inode:birth of the directory being watched
  const identity = (): string | undefined => {
    try {
      const info = statSync(directory);
      return info.isDirectory() ? `${info.dev}:${info.ino}:${info.birthtimeMs}` : undefined;
    } catch {
      return undefined;
    }
  };

  let fingerprint = treeFingerprint(directory);
  const changed = (why: string): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      fingerprint = treeFingerprint(directory); // what this reload reads: no second one for it
      logger.info({ directory, why }, "RULES_WATCH: rules changed; reloading YARA");
      backends.reload({ rulesDirectoryOnly: true }).catch(() => {});
    }, rulesWatchDebounceMs);
  };
  const arm = (): void => {
    watcher?.close();
    watcher = undefined;
    watched = identity();
    if (!watched) return; // gone for now: the check below arms again when it is back
    try {
      watcher = watch(directory, { recursive: true, persistent: false }, () => changed("a file"));
      watcher.on("error", (error) => {
        logger.warn({ err: error, directory }, "RULES_WATCH: the watch failed; watching again");
        watched = undefined;
      });
    } catch (error) {
      logger.error(
        { err: error, directory },
        "RULES_WATCH: cannot watch RULES_DIR; SIGHUP still reloads",
      );
    }
  };
  arm();
  const check = setInterval(() => {
    const now = identity();
    const print = treeFingerprint(directory);
    if (now !== watched) {
      arm();
      if (now) changed("RULES_DIR was replaced");
    } else if (print !== fingerprint) {
      arm();
      changed("the rules tree changed");
    }
    fingerprint = print;
  }, rulesDirectoryCheckMs);
  check.unref();
  logger.info({ directory }, "RULES_WATCH: reloading the YARA rules when RULES_DIR changes");
  return {
    close: () => {
      clearTimeout(timer);
      clearInterval(check);
      watcher?.close();
    },
  };
}
