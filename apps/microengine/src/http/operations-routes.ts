import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { type BackendReadiness, createReadinessProbe } from "../operations/readiness.js";

/** What the routes need of a Fastify instance (serve's and the worker's differ in logger type). */
interface RouteHost {
  get(
    path: string,
    handler: (
      request: unknown,
      reply: { header(name: string, value: string): unknown },
    ) => Promise<unknown>,
  ): unknown;
}

/**
 * The operations routes serve and the worker share: `GET /healthz` (alive) and `GET /metrics`
 * (which refreshes `engine_signatures_age_seconds` through the readiness probe, at most once a
 * second). Returns that probe for the caller's own `/readyz`.
 */
export function addOperationsRoutes(
  app: RouteHost,
  options: { backends: EngineBackends; metrics: EngineMetrics },
): () => Promise<BackendReadiness> {
  const { metrics } = options;
  const probe = createReadinessProbe(options.backends);
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/metrics", async (_request, reply) => {
    await probe().catch(() => {});
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  return probe;
}
