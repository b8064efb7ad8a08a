import type { ConcurrencyLimit } from "@engine/core";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineConfig } from "../config/config.js";
import type { BountyIntake } from "../intake/bounty-intake.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { redactUrls } from "../operations/redact.js";
import { BountyBodyError, parseBountyBody } from "../protocol/bounty.js";
import { verifySignature } from "../protocol/webhook-signature.js";
import { guardConnections } from "./connection-guard.js";
import { operationsRoutes } from "./operations-routes.js";
import { publicBody } from "./public-body.js";
import type { RoleReadiness } from "./readiness-body.js";
import { createScanSlots, scanRoutes } from "./scan-routes.js";

/** Seconds a marketplace is told to wait before retrying when the engine is saturated. */
const retryAfterSeconds = 5;

/** Longest time to receive one request, headers and body, in ms. */
const requestTimeoutMs = 120_000;

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
 * The engine's HTTP server: the PolySwarm webhook (`POST /`), the scan API (`POST /scan`),
 * `GET /` (liveness, as the webhook SDK answers it), `GET /healthz`, `GET /readyz` and
 * `GET /metrics`. Each body is bounded before it is read
 * (WEBHOOK_MAX_BYTES for webhooks, ARTIFACT_MAX_BYTES for scans), and errors answer a code and
 * a public reason while the details go to the log.
 */
export async function createServer(options: {
  config: EngineConfig;
  backends: EngineBackends;
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

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const status =
      typeof error.statusCode === "number" && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500)
      request.log.error({ err: error, message: redactUrls(error.message) }, "request failed");
    else request.log.info({ code: error.code, status }, "request refused");
    const message =
      status === 413
        ? "the body is too large"
        : status === 415
          ? "unsupported content type"
          : status < 500
            ? "bad request"
            : "internal error";
    // A refused body may still be on its way: close instead of reading it.
    if (status === 413) reply.header("connection", "close");
    return reply
      .code(status)
      .send(
        publicBody(
          status === 413 ? "BODY_TOO_LARGE" : status < 500 ? "BAD_REQUEST" : "ENGINE_ERROR",
          message,
        ),
      );
  });

  await app.register(async (webhook: FastifyInstance) => {
    // The signature is over the exact bytes received: every content type arrives raw, bounded.
    webhook.removeAllContentTypeParsers();
    webhook.addContentTypeParser(
      "*",
      { parseAs: "buffer", bodyLimit: config.WEBHOOK_MAX_BYTES },
      (_request, body, done) => done(null, body),
    );
    webhook.post(
      "/",
      {
        // Refused before the body is read: a request without a signature costs nothing.
        onRequest: async (request, reply) => {
          if (!config.WEBHOOK_SECRET) return;
          const signature = request.headers["x-polyswarm-signature"];
          // Refused before the body is read: the body is never read, so drop the connection.
          if (typeof signature !== "string" || signature.length === 0)
            return reply
              .code(400)
              .header("connection", "close")
              .send(publicBody("MISSING_SIGNATURE", "missing X-POLYSWARM-SIGNATURE"));
          if (!/^[0-9a-fA-F]{64}$/.test(signature))
            return reply
              .code(401)
              .header("connection", "close")
              .send(publicBody("BAD_SIGNATURE", "X-POLYSWARM-SIGNATURE does not match the body"));
        },
      },
      async (request: FastifyRequest, reply: FastifyReply) => {
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        if (config.WEBHOOK_SECRET) {
          const signature = String(request.headers["x-polyswarm-signature"]);
          if (!verifySignature(config.WEBHOOK_SECRET, body, signature)) {
            return reply
              .code(401)
              .send(publicBody("BAD_SIGNATURE", "X-POLYSWARM-SIGNATURE does not match the body"));
          }
        }
        const event = String(request.headers["x-polyswarm-event"] ?? "").toLowerCase();
        if (event === "ping") return reply.code(200).send({ status: "OK" });
        if (event !== "bounty")
          return reply
            .code(400)
            .send(
              publicBody(
                "UNKNOWN_EVENT",
                `unknown X-POLYSWARM-EVENT ${JSON.stringify(event.slice(0, 64))}`,
              ),
            );
        let bounty: ReturnType<typeof parseBountyBody>;
        try {
          bounty = parseBountyBody(body);
        } catch (error) {
          if (error instanceof BountyBodyError)
            return reply.code(400).send(publicBody("BAD_BOUNTY", error.message));
          throw error;
        }
        const refusal = processor.responseRefusal(bounty.response_url);
        if (refusal)
          return reply.code(400).send(publicBody("BAD_BOUNTY", `response_url: ${refusal}`));
        const delivery = request.headers["x-polyswarm-delivery"];
        const outcome = await processor.submit(
          bounty,
          typeof delivery === "string" ? delivery : undefined,
        );
        if (outcome === "overloaded" || outcome === "unavailable")
          return reply
            .code(503)
            .header("retry-after", String(retryAfterSeconds))
            .send(
              outcome === "overloaded"
                ? publicBody("OVERLOADED", "the engine is overloaded; retry later")
                : publicBody("QUEUE_UNAVAILABLE", "the bounty could not be queued; retry later"),
            );
        return reply
          .code(202)
          .send({ status: "ACCEPTED", ...(outcome === "duplicate" ? { duplicate: true } : {}) });
      },
    );
  });

  const scanSlots = createScanSlots(config);
  await app.register(scanRoutes, { config, backends, metrics, slots: scanSlots });

  // The webhook SDK's liveness check: a marketplace or load balancer may poll it.
  app.get("/", async () => ({ status: "OK" }));
  await app.register(operationsRoutes, {
    backends,
    metrics,
    roleReadiness: () => intakeReadiness(processor, scanSlots),
  });

  return app;
}
