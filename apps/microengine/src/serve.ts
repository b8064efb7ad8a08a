import { ConcurrencyLimit } from "@engine/core";
import type { Logger } from "pino";
import { type BountyIntake, BountyProcessor } from "./bounty-processor.js";
import { connectQueue, RedisBountyQueue, runQueueWorkers } from "./bounty-queue.js";
import { ConfigError, type EngineConfig } from "./config.js";
import { buildBackends } from "./engine-backends.js";
import { createMetrics } from "./metrics.js";
import { createServer } from "./server.js";
import { engineVersion } from "./version.js";

/** A running engine. */
export interface RunningEngine {
  /** `http://host:port` it listens on. */
  url: string;
  /** Graceful stop: stop accepting, answer what is in flight, stop the backends. */
  close(): Promise<void>;
}

/**
 * Starts the engine: backends (the start banner says which run and why the others do not),
 * the webhook receiver and the scan API. Refuses to start without WEBHOOK_SECRET unless
 * INSECURE_NO_WEBHOOK_SECRET is set, and then warns.
 */
export async function startEngine(config: EngineConfig, logger: Logger): Promise<RunningEngine> {
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
  const backends = await buildBackends(config, logger);
  for (const status of backends.statuses) {
    logger.info(
      { backend: status.name, running: status.running },
      `${status.name}: ${status.running ? "on" : "off"} (${status.reason})`,
    );
  }
  const metrics = createMetrics();
  let processor: BountyIntake;
  let scanSlots: ConcurrencyLimit;
  try {
    if (config.QUEUE_URL) {
      processor = new RedisBountyQueue(
        await connectQueue(config.QUEUE_URL, logger),
        config.QUEUE_NAME,
        metrics,
        config,
      );
      scanSlots = new ConcurrencyLimit({
        concurrency: config.BOUNTY_CONCURRENCY,
        maxWaiting: config.BOUNTY_BACKLOG,
        what: "scan slots (BOUNTY_CONCURRENCY)",
      });
    } else {
      const local = new BountyProcessor({ scanner: backends.scanner, config, logger, metrics });
      processor = local;
      scanSlots = local.slots; // the scan API shares the bounties' bound
    }
  } catch (error) {
    await backends.dispose();
    throw error;
  }
  if (config.QUEUE_URL)
    logger.info(
      { queue: config.QUEUE_NAME },
      `queue mode: bounties go to ${config.QUEUE_NAME}; run microengine worker to scan them`,
    );
  const app = await createServer({ config, backends, processor, scanSlots, metrics, logger });
  try {
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (error) {
    await backends.dispose();
    throw error;
  }
  const address = app.server.address();
  const url =
    typeof address === "object" && address
      ? `http://${config.HOST.includes(":") ? `[${config.HOST}]` : config.HOST}:${address.port}`
      : `http://${config.HOST}:${config.PORT}`;
  logger.info({ url, version: engineVersion }, `microengine ${engineVersion} listening on ${url}`);
  let closing: Promise<void> | undefined;
  return {
    url,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await processor.drain();
        await backends.dispose();
      })();
      return closing;
    },
  };
}

/** A running queue worker. */
export interface RunningWorker {
  /** Graceful stop: in-flight bounties are answered (unknown when cut short), then it exits. */
  close(): Promise<void>;
  /** Resolves when the worker loops have ended. */
  done: Promise<void>;
}

/** Starts `microengine worker`: backends, then WORKER_CONCURRENCY loops taking bounties from QUEUE_URL. */
export async function startWorker(config: EngineConfig, logger: Logger): Promise<RunningWorker> {
  if (!config.QUEUE_URL)
    throw new ConfigError([
      "QUEUE_URL: required by microengine worker (e.g. redis://127.0.0.1:6379)",
    ]);
  await connectQueue(config.QUEUE_URL, logger).then((redis) => redis.quit());
  const backends = await buildBackends(config, logger);
  for (const status of backends.statuses) {
    logger.info(
      { backend: status.name, running: status.running },
      `${status.name}: ${status.running ? "on" : "off"} (${status.reason})`,
    );
  }
  const processor = new BountyProcessor({
    scanner: backends.scanner,
    config,
    logger,
    metrics: createMetrics(),
  });
  const stop = new AbortController();
  const done = runQueueWorkers({
    url: config.QUEUE_URL,
    queue: config.QUEUE_NAME,
    concurrency: config.WORKER_CONCURRENCY,
    processor,
    logger,
    signal: stop.signal,
  }).finally(() => backends.dispose());
  return {
    done,
    close: async () => {
      stop.abort();
      await processor.drain();
      await done;
    },
  };
}
