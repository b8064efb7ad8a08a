import Fastify from "fastify";
import type { Logger } from "pino";
import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { QueueWorker } from "../queue/bounty-queue.js";
import { addOperationsRoutes } from "./operations-routes.js";

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
  const probe = addOperationsRoutes(app, { backends, metrics });
  app.get("/readyz", async (_request, reply) => {
    const { ready, checks } = await probe();
    const taking = worker.running();
    const ok = ready && taking;
    return reply.code(ok ? 200 : 503).send({
      status: ok ? "ready" : "not ready",
      checks: { ...checks, queue: { ok: taking, jobs: worker.counts } },
      cache: backends.cache,
    });
  });
  return app;
}
