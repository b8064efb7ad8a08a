import type { FastifyInstance } from "fastify";
import type { EngineBackends } from "../backends/build-backends.js";
import { engineCoverage } from "../backends/signature-coverage.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { createReadinessProbe } from "../operations/readiness.js";
import { type RoleReadiness, readinessAnswer } from "./readiness-body.js";

/** What the operations routes need. */
export interface OperationsRoutesOptions {
  /**
   * The running backends (probed for `/readyz`) and where the result cache lives; `started`
   * false while queue mode's serve has not started them (see lazy-backends.ts).
   */
  backends: Pick<EngineBackends, "running" | "cache"> & {
    readonly started?: boolean;
    readonly startError?: string | undefined;
  };
  metrics: Pick<EngineMetrics, "registry">;
  /** The role's part of `/readyz` (see {@link RoleReadiness}), asked after the backends' probe. */
  roleReadiness: () => Promise<RoleReadiness>;
}

/**
 * The operations routes of serve and of a queue worker, as a Fastify plugin: `GET /healthz`
 * (alive), `GET /metrics` (which refreshes `engine_signatures_age_seconds` through the
 * backends' readiness probe, at most once a second) and `GET /readyz` (the backends' probe and
 * the role's own part, one body for both: see {@link readinessAnswer}).
 */
export async function operationsRoutes(app: FastifyInstance, options: OperationsRoutesOptions) {
  const { backends, metrics, roleReadiness } = options;
  const probe = createReadinessProbe(backends);
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/metrics", async (_request, reply) => {
    await probe().catch(() => {});
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get("/readyz", async (_request, reply) => {
    const answer = readinessAnswer(
      await probe(),
      await roleReadiness(),
      backends.cache,
      backends.started === false ? undefined : engineCoverage(backends.running),
    );
    return reply.code(answer.statusCode).send(answer.body);
  });
}
