import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { buildBackends, type EngineBackends } from "../backends/build-backends.js";
import { backendsNotStartedNote, lazyBackends } from "../backends/lazy-backends.js";
import { watchRules } from "../backends/rules-watcher.js";
import type { EngineConfig } from "../config/config.js";
import { closeHttpDraining } from "../http/draining-close.js";
import { createLogger } from "../operations/logger.js";
import { createMetrics, type EngineMetrics } from "../operations/metrics.js";
import { queueSeal, type RedisSeal } from "../queue/redis-seal.js";
import { logBackendStatuses } from "./backend-banner.js";
import { reloadOnHangup, stopOnSignals } from "./process-signals.js";

/**
 * What `serve` and `worker` both start with (see {@link startRuntime}). With a configuration
 * whose QUEUE_URL is known to be set, the seal is too.
 */
export interface EngineRuntime<Config extends EngineConfig = EngineConfig> {
  config: Config;
  logger: Logger;
  metrics: EngineMetrics;
  /** Seals what goes through Redis under QUEUE_SECRET; there with QUEUE_URL only. */
  seal: Config extends { QUEUE_URL: string } ? RedisSeal : RedisSeal | undefined;
  backends: EngineBackends;
}

/**
 * What `serve` and `worker` do first: their metrics; with QUEUE_URL the queue seal (queue mode
 * reads back from Redis only what QUEUE_SECRET authenticates: checked before anything slow
 * starts); the backends, with the result cache, and the start banner: now, or with
 * `startBackends: "on first scan"` (queue mode's serve) when the first scan needs them.
 */
export async function startRuntime<Config extends EngineConfig>(
  config: Config,
  logger: Logger,
  { startBackends = "now" }: { startBackends?: "now" | "on first scan" } = {},
): Promise<EngineRuntime<Config>> {
  const metrics = createMetrics();
  const seal = (
    config.QUEUE_URL ? queueSeal(config, metrics) : undefined
  ) as EngineRuntime<Config>["seal"];
  const build = async (): Promise<EngineBackends> => {
    const backends = await buildBackends(config, logger, { resultCache: true, metrics });
    logBackendStatuses(backends, logger);
    return backends;
  };
  if (startBackends === "now") return { config, logger, metrics, seal, backends: await build() };
  logger.info({ backends: "not started" }, `backends ${backendsNotStartedNote}`);
  const backends = lazyBackends(build, (error) =>
    logger.error(
      { err: error },
      "the backends could not start: POST /scan answers 503 until they do",
    ),
  );
  return { config, logger, metrics, seal, backends };
}

/** A started `serve` or `worker`, as its command drives it. */
export interface RunningService {
  /** Graceful stop (the same promise however often it is called). */
  close(): Promise<void>;
  /** Reloads rules and signatures; resolves false when one failed (the last good stay). */
  reload(): Promise<boolean>;
}

/**
 * Runs a command that stays up (`serve`, `worker`): its logger; SIGHUP reloads from the
 * start (one during start-up, even before this module loaded, reloads once started);
 * `start`; then SIGTERM and SIGINT log `stoppingMessage` and close it gracefully.
 */
export async function runService<Running extends RunningService>(
  config: EngineConfig,
  stoppingMessage: string,
  start: (config: EngineConfig, logger: Logger) => Promise<Running>,
): Promise<Running> {
  const logger = createLogger(config);
  const hangup = reloadOnHangup(logger);
  const running = await start(config, logger);
  stopOnSignals(logger, stoppingMessage, running.close);
  hangup.started(running.reload);
  return running;
}

/** An HTTP app as the runtime listens on it and closes it (a Fastify instance). */
interface ListeningApp {
  listen(options: { port: number; host: string }): PromiseLike<unknown>;
  close(): PromiseLike<unknown>;
  server: { address(): string | AddressInfo | null; closeAllConnections(): void };
}

/** What a service does when it stops, beyond what every service does. */
export interface ServiceStop {
  /** Runs once the app stopped listening, before its connections are closed. */
  drain(): Promise<unknown>;
  /** Runs after the drain and the HTTP close, before the backends are disposed. */
  afterDrain?(): Promise<void>;
  /** Runs last, once the backends are disposed. */
  closed?(): void;
}

/** With RULES_WATCH, the watch on RULES_DIR (none for backends not started yet). */
function rulesWatcher(
  config: EngineConfig,
  backends: EngineBackends,
  logger: Logger,
): { close(): void } | undefined {
  if (!config.RULES_WATCH) return undefined;
  if ("started" in backends && backends.started === false) {
    logger.info(
      "RULES_WATCH: not watched here (queue mode's serve starts its backends at the first POST /scan; SIGHUP reloads them)",
    );
    return undefined;
  }
  return watchRules(config, backends, logger);
}

/**
 * Reload and the graceful close of a service listening on `app`. With RULES_WATCH the rules
 * watcher starts now. `close` stops the watcher, closes `app` draining first (see
 * closeHttpDraining: `stop.drain` whatever the HTTP clients do, lingering connections closed
 * after), then runs `stop.afterDrain`, disposes the backends and runs `stop.closed`.
 */
export function untilClosed(
  runtime: Pick<EngineRuntime, "config" | "logger" | "backends">,
  app: ListeningApp,
  stop: ServiceStop,
): RunningService {
  const { config, logger, backends } = runtime;
  const watcher = rulesWatcher(config, backends, logger);
  let closing: Promise<void> | undefined;
  return {
    reload: () => backends.reload(),
    close: () => {
      closing ??= (async () => {
        watcher?.close();
        await closeHttpDraining(app, () => stop.drain());
        await stop.afterDrain?.();
        await backends.dispose();
        stop.closed?.();
      })();
      return closing;
    },
  };
}
