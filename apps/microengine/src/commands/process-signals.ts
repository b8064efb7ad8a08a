import type { Logger } from "pino";

/** On SIGTERM or SIGINT: log `message`, run the graceful `close`, exit 0 (1 if closing failed). */
export function stopOnSignals(logger: Logger, message: string, close: () => Promise<void>): void {
  const stop = (signal: string): void => {
    logger.info({ signal }, message);
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

/** The SIGHUP count the launcher (bin/microengine.cjs) keeps until {@link reloadOnHangup} runs. */
interface EarlyHangups {
  __microengineEarlyHangups?: number;
  __microengineEarlyHangupListener?: () => void;
}

/**
 * On SIGHUP (the usual "reload"): reload the rules and signatures, one reload at a time; a
 * failure is logged and counted, and the last good rules stay. Without this, SIGHUP would end
 * the process.
 */
export function reloadOnHangup(logger: Logger): {
  started(reload: () => Promise<boolean>): void;
} {
  let reload: (() => Promise<boolean>) | undefined;
  let pending = false;
  const run = (): void => {
    if (!reload) {
      // Installed before start: a SIGHUP during start-up reloads once it is up, never kills it.
      pending = true;
      logger.info({ signal: "SIGHUP" }, "still starting: reloading once started");
      return;
    }
    logger.info({ signal: "SIGHUP" }, "reloading rules and signatures");
    reload().then(
      (ok) =>
        logger.info({ ok }, ok ? "reload done" : "reload failed; serving the last good rules"),
      (error: unknown) =>
        logger.error({ err: error }, "reload failed; serving the last good rules"),
    );
  };
  process.on("SIGHUP", run);
  // SIGHUPs the launcher (bin/microengine.cjs) counted before this handler existed.
  const early = globalThis as EarlyHangups;
  if (early.__microengineEarlyHangupListener) {
    process.off("SIGHUP", early.__microengineEarlyHangupListener);
    if ((early.__microengineEarlyHangups ?? 0) > 0) run();
  }
  return {
    started: (target) => {
      reload = target;
      if (pending) run();
    },
  };
}
