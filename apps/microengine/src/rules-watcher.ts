import { type FSWatcher, statSync, watch } from "node:fs";
import type { Logger } from "pino";
import type { EngineConfig } from "./config.js";
import type { EngineBackends } from "./engine-backends.js";

/** How long the rules must stay unchanged before a reload, in ms: an editor or rsync writes in bursts. */
export const rulesWatchDebounceMs = 500;

/** How often the watcher checks that RULES_DIR is still the directory it watches, in ms. */
export const rulesDirectoryCheckMs = 2_000;

/**
 * RULES_WATCH: reloads the YARA rules when a file under RULES_DIR changes, once the changes
 * have stopped for {@link rulesWatchDebounceMs} (clamd's databases are left to SIGHUP). A
 * RULES_DIR replaced as a whole (a new directory renamed into place, as deploy tools do) is
 * noticed within {@link rulesDirectoryCheckMs}: the watch moves to the new one and the rules
 * reload. A reload that fails keeps the last good rules (see `EngineBackends.reload`).
 */
export function watchRules(
  config: EngineConfig,
  backends: EngineBackends,
  logger: Logger,
): { close(): void } {
  const directory = config.RULES_DIR;
  if (!directory || !backends.yara) {
    logger.warn("RULES_WATCH: nothing to watch (set RULES_DIR and run yara); SIGHUP still reloads");
    return { close: () => {} };
  }
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  let watched: string | undefined; // device:inode of the directory being watched
  const identity = (): string | undefined => {
    try {
      const info = statSync(directory);
      return info.isDirectory() ? `${info.dev}:${info.ino}` : undefined;
    } catch {
      return undefined;
    }
  };
  const changed = (why: string): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      logger.info({ directory, why }, "RULES_WATCH: rules changed; reloading YARA");
      backends.reload({ clamav: false }).catch(() => {});
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
    if (now !== watched) {
      arm();
      if (now) changed("RULES_DIR was replaced");
    }
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
