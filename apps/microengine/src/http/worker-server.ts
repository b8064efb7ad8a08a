import Fastify from "fastify";
import type { Logger } from "pino";
import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { QueueWorker } from "../queue/queue-worker.js";
import { operationsRoutes } from "./operations-routes.js";
import type { RoleReadiness } from "./readiness-body.js";

/** A worker's part of `/readyz`: the queue is ok while it takes jobs, with the job counts. */
function queueWorkerReadiness(worker: Pick<QueueWorker, "running" | "counts">): RoleReadiness {
  return { queue: { ok: worker.running(), jobs: worker.counts } };
}

/**
 * A queue worker's operations endpoint: `GET /healthz` (alive), `GET /readyz` (taking jobs
 * from Redis, backends ready, the queue's job counts) and `GET /metrics` (queue depth, waiting
 * time, stalled, retried and dead-lettered jobs, plus the scan metrics).
 */
export async function createWorkerServer(options: {
  backends: EngineBackends;
  worker: QueueWorker;
  metrics: EngineMetrics;
  logger: Logger;
}) {
  const { backends, worker, metrics } = options;
  const app = Fastify({
    loggerInstance: options.logger.child({ component: "worker-http" }, { level: "warn" }),
    requestTimeout: 10_000,
  });
  await app.register(operationsRoutes, {
    backends,
    metrics,
    roleReadiness: async () => queueWorkerReadiness(worker),
  });
  return app;
}
