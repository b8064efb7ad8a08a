import { type FSWatcher, watch } from "node:fs";
import type { Logger } from "pino";
import type { EngineConfig } from "./config.js";
import type { EngineBackends } from "./engine-backends.js";

/** How long the rules must stay unchanged before a reload, in ms: an editor or rsync writes in bursts. */
export const rulesWatchDebounceMs = 500;

/**
 * RULES_WATCH: reloads the rules (and the managed clamd's databases, as SIGHUP does) when a
 * file under RULES_DIR changes, once the changes have stopped for {@link rulesWatchDebounceMs}.
 * A reload that fails keeps the last good rules (see `EngineBackends.reload`). Without
 * RULES_DIR (the bundled rules) there is nothing to watch, and it says so.
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
  let watcher: FSWatcher;
  try {
    watcher = watch(directory, { recursive: true, persistent: false }, () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        logger.info({ directory }, "RULES_WATCH: rules changed; reloading");
        backends.reload().catch(() => {});
      }, rulesWatchDebounceMs);
    });
  } catch (error) {
    logger.error(
      { err: error, directory },
      "RULES_WATCH: cannot watch RULES_DIR; SIGHUP still reloads",
    );
    return { close: () => {} };
  }
  watcher.on("error", (error) =>
    logger.error({ err: error, directory }, "RULES_WATCH: the watch failed; SIGHUP still reloads"),
  );
  logger.info({ directory }, "RULES_WATCH: reloading the rules when RULES_DIR changes");
  return {
    close: () => {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
