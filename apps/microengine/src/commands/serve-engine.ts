import type { Logger } from "pino";
import { ConfigError, type EngineConfig } from "../config/config.js";
import { listen } from "../http/listen.js";
import { createServer } from "../http/server.js";
import type { BountyIntake } from "../intake/bounty-intake.js";
import { BountyProcessor } from "../intake/bounty-processor.js";
import { engineVersion } from "../operations/version.js";
import { BullBountyQueue } from "../queue/bounty-receiver.js";
import { ledgeredProcessor } from "../queue/ledgered-processor.js";
import type { RedisSeal } from "../queue/redis-seal.js";
import { type EngineRuntime, startRuntime, untilClosed } from "./engine-runtime.js";

/** A running engine. */
export interface RunningEngine {
  /** `http://host:port` it listens on. */
  url: string;
  /** Graceful stop: stop accepting, answer what is in flight, stop the backends. */
  close(): Promise<void>;
  /** Reloads rules and signatures (SIGHUP); resolves false when one failed (the last good stay). */
  reload(): Promise<boolean>;
}

/**
 * Starts the engine: backends (the start banner says which run and why the others do not),
 * the webhook receiver and the scan API. Refuses to start without WEBHOOK_SECRET unless
 * INSECURE_NO_WEBHOOK_SECRET is set, and then warns.
 */
export async function startEngine(config: EngineConfig, logger: Logger): Promise<RunningEngine> {
  refuseUnsafeSettings(config, logger);
  // In queue mode the workers scan the bounties: serve starts its backends for POST /scan only.
  const runtime = await startRuntime(config, logger, {
    startBackends: config.QUEUE_URL ? "on first scan" : "now",
  });
  const intake = await openIntake(runtime);
  if (config.QUEUE_URL)
    logger.info(
      { queue: config.QUEUE_NAME },
      `queue mode: bounties go to ${config.QUEUE_NAME}; run microengine worker to scan them`,
    );
  const { app, url } = await listenOrStop(runtime, intake);
  logger.info({ url, version: engineVersion }, `microengine ${engineVersion} listening on ${url}`);
  const running = untilClosed(runtime, app, {
    // Drains first (together: the watcher's answers in flight stop retrying when the grace
    // period ends), whatever the HTTP clients do; lingering connections are closed after.
    drain: () => Promise.all([intake.processor.drain(), intake.closeQueueExtras()]),
  });
  return { url, ...running };
}

/** Refuses to start without WEBHOOK_SECRET (unless told to), and warns about what is unsafe. */
function refuseUnsafeSettings(
  config: Pick<
    EngineConfig,
    "WEBHOOK_SECRET" | "INSECURE_NO_WEBHOOK_SECRET" | "ARTIFACT_ALLOW_PRIVATE_ADDRESSES"
  >,
  logger: Logger,
): void {
  if (!config.WEBHOOK_SECRET && !config.INSECURE_NO_WEBHOOK_SECRET) {
    throw new ConfigError([
      "WEBHOOK_SECRET: required to check X-POLYSWARM-SIGNATURE; set it to the secret shared with the marketplace (or pass --insecure-no-webhook-secret for local tests only)",
    ]);
  }
  if (!config.WEBHOOK_SECRET)
    logger.warn(
      "INSECURE: webhook signatures are NOT checked (INSECURE_NO_WEBHOOK_SECRET); anyone who can reach this port can post bounties",
    );
  if (config.ARTIFACT_ALLOW_PRIVATE_ADDRESSES)
    logger.warn(
      "ARTIFACT_ALLOW_PRIVATE_ADDRESSES: artifact downloads and answers may reach private, loopback and link-local addresses (for a local marketplace or a private network only)",
    );
}

/** Where serve hands the bounties it receives. */
interface ServeIntake {
  /** Answers them (alone), or queues them for the workers (queue mode). */
  processor: BountyIntake;
  /** What queue mode opened besides the queue: closed after it. */
  closeQueueExtras(): Promise<void>;
}

/** The intake: a bounty processor, or in queue mode the queue. Disposes the backends if it fails. */
async function openIntake(runtime: EngineRuntime): Promise<ServeIntake> {
  const { config, logger, metrics, seal, backends } = runtime;
  try {
    if (config.QUEUE_URL && seal) return await openQueueIntake(runtime, config.QUEUE_URL, seal);
    return {
      processor: new BountyProcessor({ scanner: backends.scanner, config, logger, metrics }),
      closeQueueExtras: async () => {},
    };
  } catch (error) {
    await backends.dispose();
    throw error;
  }
}

/** Queue mode: the queue, and the answer ledger its deadline watcher answers through. */
async function openQueueIntake(
  runtime: EngineRuntime,
  queueUrl: string,
  seal: RedisSeal,
): Promise<ServeIntake> {
  const { config, logger, metrics, backends } = runtime;
  // serve answers no bounty itself, but its deadline watcher answers those nobody did.
  const {
    processor: answering,
    ledger,
    close,
  } = ledgeredProcessor(queueUrl, seal, config, backends, metrics, logger);
  const closeQueueExtras = async (): Promise<void> => {
    await answering.drain();
    await close();
  };
  try {
    const processor = await BullBountyQueue.open({
      config: { ...config, QUEUE_URL: queueUrl },
      processor: answering,
      ledger,
      seal,
      metrics,
      logger,
    });
    return { processor, closeQueueExtras };
  } catch (error) {
    await closeQueueExtras(); // the ledger's connection too, not only the backends
    throw error;
  }
}

/** The webhook receiver and scan API, listening; if that fails, stops what was started. */
async function listenOrStop(runtime: EngineRuntime, intake: ServeIntake) {
  const { config, logger, metrics, backends } = runtime;
  const { processor } = intake;
  let app: Awaited<ReturnType<typeof createServer>> | undefined;
  try {
    app = await createServer({ config, backends, processor, metrics, logger });
    return { app, url: await listen(app, config.HOST, config.PORT) };
  } catch (error) {
    // Nothing taken on yet: stop what was started (the queue, the ledger, the backends).
    await app?.close().catch(() => {});
    await Promise.allSettled([processor.drain(), intake.closeQueueExtras()]);
    await backends.dispose();
    throw error;
  }
}
