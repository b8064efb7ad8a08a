import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { buildBackends, type EngineBackends } from "../backends/build-backends.js";
import { watchRules } from "../backends/rules-watcher.js";
import { ConfigError, type EngineConfig } from "../config/config.js";
import { closeHttpDraining } from "../http/draining-close.js";
import { createServer } from "../http/server.js";
import { createWorkerServer } from "../http/worker-server.js";
import type { BountyIntake } from "../intake/bounty-intake.js";
import { BountyProcessor } from "../intake/bounty-processor.js";
import { createMetrics } from "../operations/metrics.js";
import { engineVersion } from "../operations/version.js";
import { BullBountyQueue, startQueueWorker } from "../queue/bounty-queue.js";
import { ledgeredProcessor } from "../queue/ledgered-processor.js";
import { queueSeal } from "../queue/redis-seal.js";

/** `http://host:port` of a listening server (the port it got when 0 was asked for). */
function listeningUrl(address: string | AddressInfo | null, host: string, port: number): string {
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return `http://${bracketed}:${typeof address === "object" && address ? address.port : port}`;
}

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
  const metrics = createMetrics();
  // Queue mode reads back from Redis only what QUEUE_SECRET authenticates: checked first.
  const seal = config.QUEUE_URL ? queueSeal(config, metrics) : undefined;
  const backends = await buildBackends(config, logger, { resultCache: true, metrics });
  logBackendStatuses(backends, logger);
  let processor: BountyIntake;
  /** What queue mode opened besides the queue: closed after it. */
  let closeQueueExtras = async (): Promise<void> => {};
  try {
    if (config.QUEUE_URL && seal) {
      // serve answers no bounty itself, but its deadline watcher answers those nobody did.
      const {
        processor: answering,
        ledger,
        close,
      } = ledgeredProcessor(config.QUEUE_URL, seal, config, backends, metrics, logger);
      closeQueueExtras = async () => {
        await answering.drain();
        await close();
      };
      processor = await BullBountyQueue.open({
        config: { ...config, QUEUE_URL: config.QUEUE_URL },
        processor: answering,
        ledger,
        seal,
        metrics,
        logger,
      });
    } else {
      processor = new BountyProcessor({ scanner: backends.scanner, config, logger, metrics });
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
  let app: Awaited<ReturnType<typeof createServer>> | undefined;
  try {
    app = await createServer({ config, backends, processor, metrics, logger });
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (error) {
    // Nothing taken on yet: stop what was started (the queue, the ledger, the backends).
    await app?.close().catch(() => {});
    await Promise.allSettled([processor.drain(), closeQueueExtras()]);
    await backends.dispose();
    throw error;
  }
  const server = app;
  const url = listeningUrl(server.server.address(), config.HOST, config.PORT);
  logger.info({ url, version: engineVersion }, `microengine ${engineVersion} listening on ${url}`);
  const watcher = config.RULES_WATCH ? watchRules(config, backends, logger) : undefined;
  let closing: Promise<void> | undefined;
  return {
    url,
    reload: () => backends.reload(),
    close: () => {
      closing ??= (async () => {
        watcher?.close();
        // Drains first (together: the watcher's answers in flight stop retrying when the grace
        // period ends), whatever the HTTP clients do; lingering connections are closed after.
        await closeHttpDraining(server, () => Promise.all([processor.drain(), closeQueueExtras()]));
        await backends.dispose();
      })();
      return closing;
    },
  };
}

/** The start banner: which backends run, and why the others do not. */
function logBackendStatuses(backends: EngineBackends, logger: Logger): void {
  for (const status of backends.statuses) {
    logger.info(
      { backend: status.name, running: status.running },
      `${status.name}: ${status.running ? "on" : "off"} (${status.reason})`,
    );
    if (status.warning) logger.warn({ backend: status.name }, status.warning);
  }
  logger.info(
    { cache: backends.cache },
    backends.cache === "off"
      ? "result cache: off"
      : `result cache: ${backends.cache}${backends.cache === "memory" ? "" : " (shared by every worker)"}`,
  );
}

/** A running queue worker. */
export interface RunningWorker {
  /** `http://host:port` of its /healthz, /readyz and /metrics. */
  url: string;
  /** Graceful stop: no new jobs; those in hand finish (or are answered unknown after 10 s). */
  close(): Promise<void>;
  /** Resolves when the worker has stopped. */
  done: Promise<void>;
  /** Reloads rules and signatures (SIGHUP); resolves false when one failed (the last good stay). */
  reload(): Promise<boolean>;
}

/**
 * Starts `microengine worker`: backends, then a BullMQ worker taking bounties from QUEUE_URL
 * (WORKER_CONCURRENCY at once), and /healthz, /readyz and /metrics on WORKER_PORT.
 */
export async function startWorker(config: EngineConfig, logger: Logger): Promise<RunningWorker> {
  if (!config.QUEUE_URL)
    throw new ConfigError([
      "QUEUE_URL: required by microengine worker (e.g. redis://127.0.0.1:6379)",
    ]);
  const queueUrl = config.QUEUE_URL;
  const metrics = createMetrics();
  const seal = queueSeal(config, metrics);
  const backends = await buildBackends(config, logger, { resultCache: true, metrics });
  logBackendStatuses(backends, logger);
  const {
    processor,
    ledger,
    close: closeLedger,
  } = ledgeredProcessor(queueUrl, seal, config, backends, metrics, logger);
  let worker: Awaited<ReturnType<typeof startQueueWorker>>;
  let app: Awaited<ReturnType<typeof createWorkerServer>>;
  try {
    worker = await startQueueWorker({
      config: { ...config, QUEUE_URL: queueUrl },
      processor,
      ledger,
      seal,
      metrics,
      logger,
    });
    app = await createWorkerServer({
      backends,
      worker,
      metrics,
      logger,
    });
    await app.listen({ port: config.WORKER_PORT, host: config.HOST });
  } catch (error) {
    await closeLedger();
    await backends.dispose();
    throw error;
  }
  const url = listeningUrl(app.server.address(), config.HOST, config.WORKER_PORT);
  logger.info({ url }, `worker health and metrics on ${url}`);
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const watcher = config.RULES_WATCH ? watchRules(config, backends, logger) : undefined;
  let closing: Promise<void> | undefined;
  return {
    url,
    done,
    reload: () => backends.reload(),
    close: () => {
      closing ??= (async () => {
        watcher?.close();
        // The worker drains the processor; a client of the health port cannot hold it.
        await closeHttpDraining(app, () => worker.close());
        await closeLedger();
        await backends.dispose();
        finish();
      })();
      return closing;
    },
  };
}
