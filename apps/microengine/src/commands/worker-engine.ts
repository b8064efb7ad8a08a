import type { Logger } from "pino";
import { ConfigError, type EngineConfig } from "../config/config.js";
import { type ListenableApp, listen } from "../http/listen.js";
import { createWorkerServer } from "../http/worker-server.js";
import { ledgeredProcessor } from "../queue/ledgered-processor.js";
import { startQueueWorker } from "../queue/queue-worker.js";
import { type EngineRuntime, startRuntime, untilClosed } from "./engine-runtime.js";

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
  const runtime = await startRuntime({ ...config, QUEUE_URL: requiredQueueUrl(config) }, logger);
  const { worker, app, url, closeLedger } = await takeJobs(runtime);
  logger.info({ url }, `worker health and metrics on ${url}`);
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const running = untilClosed(runtime, app, {
    // The worker drains the processor; a client of the health port cannot hold it.
    drain: () => worker.close(),
    afterDrain: closeLedger,
    closed: finish,
  });
  return { url, done, ...running };
}

/** QUEUE_URL, which the worker cannot do without. */
function requiredQueueUrl(config: Pick<EngineConfig, "QUEUE_URL">): string {
  if (!config.QUEUE_URL)
    throw new ConfigError([
      "QUEUE_URL: required by microengine worker (e.g. redis://127.0.0.1:6379)",
    ]);
  return config.QUEUE_URL;
}

/**
 * The answer ledger, the BullMQ worker and its health server, listening; if that fails, closes
 * the ledger and disposes the backends.
 */
async function takeJobs(runtime: EngineRuntime<EngineConfig & { QUEUE_URL: string }>) {
  const { config, logger, metrics, seal, backends } = runtime;
  const {
    processor,
    ledger,
    close: closeLedger,
  } = ledgeredProcessor(config.QUEUE_URL, seal, config, backends, metrics, logger);
  let worker: Awaited<ReturnType<typeof startQueueWorker>> | undefined;
  let app: Awaited<ReturnType<typeof createWorkerServer>> | undefined;
  try {
    worker = await startQueueWorker({ config, processor, ledger, seal, metrics, logger });
    app = await createWorkerServer({ backends, worker, metrics, logger });
    const url = await listenOnWorkerPort(app, config, logger);
    return { worker, app, url, closeLedger };
  } catch (error) {
    // Stops what was started: the BullMQ worker (it would take jobs), its server, the ledger.
    await app?.close().catch(() => {});
    await worker?.close(0).catch(() => {});
    await closeLedger();
    await backends.dispose();
    throw error;
  }
}

/** The operations port a worker uses when WORKER_PORT is unset (a free one if it is taken). */
export const defaultWorkerPort = 8081;

/**
 * Listens on WORKER_PORT; unset, on {@link defaultWorkerPort}, or on a free port (logged) when
 * another process, such as a first worker on this machine, holds it.
 */
async function listenOnWorkerPort(
  app: ListenableApp,
  config: Pick<EngineConfig, "HOST" | "WORKER_PORT">,
  logger: Logger,
): Promise<string> {
  if (config.WORKER_PORT !== undefined) return listen(app, config.HOST, config.WORKER_PORT);
  try {
    return await listen(app, config.HOST, defaultWorkerPort);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    const url = await listen(app, config.HOST, 0);
    logger.warn(
      { url, taken: defaultWorkerPort },
      `port ${defaultWorkerPort} is taken (another worker?): this worker's /healthz, /readyz and /metrics are on ${url}; set WORKER_PORT to choose`,
    );
    return url;
  }
}
