import type { ConcurrencyLimit } from "@engine/core";
import Fastify from "fastify";
import type { Logger } from "pino";
import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineConfig } from "../config/config.js";
import type { BountyIntake } from "../intake/bounty-intake.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { guardConnections } from "./connection-guard.js";
import { operationsRoutes } from "./operations-routes.js";
import type { RoleReadiness } from "./readiness-body.js";
import { requestErrorHandler } from "./request-error-handler.js";
import {
  createScanSlots,
  type ScanRoutesConfig,
  type ScanSlotsConfig,
  scanRoutes,
} from "./scan-routes.js";
import { type WebhookRoutesConfig, webhookRoutes } from "./webhook-routes.js";

/** Longest time to receive one request, headers and body, in ms. */
const requestTimeoutMs = 120_000;

/** The settings the server reads: its routes' and HTTP_MAX_CONNECTIONS. */
export type ServerConfig = WebhookRoutesConfig &
  ScanRoutesConfig &
  ScanSlotsConfig &
  Pick<EngineConfig, "HTTP_MAX_CONNECTIONS">;

/** Serve's part of `/readyz`: the queue (queue mode), the intake's load, the scan API's slots. */
async function intakeReadiness(
  intake: Pick<BountyIntake, "queueState" | "load" | "inFlight">,
  scanSlots: ConcurrencyLimit,
): Promise<RoleReadiness> {
  const queue = intake.queueState ? await intake.queueState() : undefined;
  const load = intake.load();
  return {
    ...(queue ? { queue } : {}),
    saturated: load.saturated,
    work: {
      inFlight: intake.inFlight,
      load,
      // The scan API's own slots: full, it answers 503 itself; the bounties are not affected.
      scanApi: {
        running: scanSlots.running,
        concurrency: scanSlots.concurrency,
        waiting: scanSlots.waiting,
        backlog: scanSlots.maxWaiting,
      },
    },
    // libuv's threads for file reads, DNS and the native scans (see cli.ts).
    threadPool: Number(process.env.UV_THREADPOOL_SIZE) || 4,
  };
}

/**
 * The engine's HTTP server: the PolySwarm webhook (`POST /`, `GET /`), the scan API
 * (`POST /scan`) and the operations routes (`GET /healthz`, `GET /readyz`, `GET /metrics`).
 * Each body is bounded before it is read (WEBHOOK_MAX_BYTES for webhooks, ARTIFACT_MAX_BYTES
 * for scans), connections by HTTP_MAX_CONNECTIONS, and errors answer a code and a public
 * reason while the details go to the log.
 */
export async function createServer(options: {
  config: ServerConfig;
  backends: Pick<EngineBackends, "scanner" | "running" | "cache">;
  processor: BountyIntake;
  metrics: EngineMetrics;
  logger: Logger;
}) {
  const { config, backends, processor, metrics, logger } = options;
  // Fastify logs every request at info: its own logger stays at warn, the engine logs bounties itself.
  const httpLogger = logger.child(
    { component: "http" },
    { level: logger.levelVal > 40 ? logger.level : "warn" },
  );
  const app = Fastify({
    loggerInstance: httpLogger,
    bodyLimit: config.WEBHOOK_MAX_BYTES,
    // A request (headers and body) must arrive within this time, and sockets are counted:
    // a slow sender holds neither memory nor a connection for ever.
    requestTimeout: requestTimeoutMs,
    connectionTimeout: requestTimeoutMs,
  });
  // At the cap, idle and slow connections make room: a flood of sockets cannot lock bounties out.
  guardConnections(app.server, {
    maxConnections: config.HTTP_MAX_CONNECTIONS,
    metrics,
    logger: httpLogger,
  });
  app.setErrorHandler(requestErrorHandler);

  await app.register(webhookRoutes, { config, intake: processor });
  const scanSlots = createScanSlots(config);
  await app.register(scanRoutes, { config, backends, metrics, slots: scanSlots });
  await app.register(operationsRoutes, {
    backends,
    metrics,
    roleReadiness: () => intakeReadiness(processor, scanSlots),
  });
  return app;
}
