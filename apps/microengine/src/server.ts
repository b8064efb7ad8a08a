import { createHash, timingSafeEqual } from "node:crypto";
import type { Readable } from "node:stream";
import {
  type Artifact,
  ArtifactTooLargeError,
  artifactFromStream,
  type ConcurrencyLimit,
  createScanSignal,
  EngineError,
  type EngineErrorCode,
  InvalidOptionsError,
  OverloadedError,
  publicError,
  scanResultForError,
} from "@engine/core";
import fastifyMultipart from "@fastify/multipart";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { BountyBodyError, parseBountyBody } from "./bounty.js";
import type { BountyIntake } from "./bounty-intake.js";
import type { EngineConfig } from "./config.js";
import type { EngineBackends } from "./engine-backends.js";
import { withEngineMetadata } from "./engine-metadata.js";
import { type EngineMetrics, recordScan } from "./metrics.js";
import { addOperationsRoutes } from "./operations-routes.js";
import { redactUrls } from "./redact.js";
import { verifySignature } from "./webhook-signature.js";

/** What a multipart body may add around its file: boundaries, part headers, a few small fields. */
const multipartOverheadBytes = 64 * 1024;
/** Seconds a client is told to wait before retrying when the engine is saturated. */
const retryAfterSeconds = 5;
/** Longest scan the scan API allows (`timeout_ms`), and its default, in ms. */
const scanTimeout = { maximum: 600_000, default: 30_000 };

/** HTTP status of each error code on the scan API. */
const scanStatus: Partial<Record<EngineErrorCode, number>> = {
  ARTIFACT_TOO_LARGE: 413,
  INVALID_OPTIONS: 400,
  ARTIFACT_UNAVAILABLE: 400,
  SCAN_TIMEOUT: 504,
  OVERLOADED: 503,
};

function tooLarge(maxBytes: number): ArtifactTooLargeError {
  return new ArtifactTooLargeError({
    message: `@engine/microengine: the body is larger than ARTIFACT_MAX_BYTES (${maxBytes} bytes)`,
    publicMessage: `the artifact is larger than ARTIFACT_MAX_BYTES (${maxBytes} bytes)`,
  });
}

/**
 * The chunks of `source`, failing with ArtifactTooLargeError as soon as they pass `maxBytes`:
 * an oversize body is refused, never scanned as its prefix. A source that stops early because
 * its own limit cut it (`truncated()`) fails the same way.
 */
async function* limitedChunks(
  source: AsyncIterable<Uint8Array>,
  maxBytes: number,
  truncated: () => boolean = () => false,
): AsyncGenerator<Uint8Array> {
  let total = 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(maxBytes);
    yield chunk;
  }
  if (truncated()) throw tooLarge(maxBytes);
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {}

/** Longest time to receive one request, headers and body, in ms. */
const requestTimeoutMs = 120_000;

/** True for a listening address that only this machine can reach. */
function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** Constant-time comparison of a bearer token (digests, so the lengths never differ). */
function sameToken(given: string | undefined, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return given !== undefined && timingSafeEqual(digest(given), digest(`Bearer ${expected}`));
}

/** An AbortSignal that fires when the client goes away before it got the answer. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("the client went away"));
  });
  return controller.signal;
}

/** Public error body: a code and a short reason, never a path, an address or a stack. */
function publicBody(code: string, message: string) {
  return { status: "ERROR", code, error: message };
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
  /** Scans at once and waiting for the scan API (the bounties' own slots when they run here). */
  scanSlots: ConcurrencyLimit;
  metrics: EngineMetrics;
  logger: Logger;
}) {
  const { config, backends, processor, metrics, logger, scanSlots: slots } = options;
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
  app.server.maxConnections = config.HTTP_MAX_CONNECTIONS;
  const scanApiOpen = config.SCAN_API_TOKEN !== undefined || isLoopbackHost(config.HOST);

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

  await app.register(async (scanApi: FastifyInstance) => {
    // Bodies stream through, bounded by ARTIFACT_MAX_BYTES as they arrive.
    scanApi.removeAllContentTypeParsers();
    // One byte over the cap reaches our counter, so an oversize file fails instead of being cut.
    await scanApi.register(fastifyMultipart, {
      limits: {
        fileSize: config.ARTIFACT_MAX_BYTES + 1,
        files: 1,
        fields: 16,
        fieldSize: 4096,
        parts: 32,
        headerPairs: 64,
      },
    });
    scanApi.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
    scanApi.post("/scan", async (request, reply) => {
      if (!scanApiOpen) {
        return reply
          .code(403)
          .header("connection", "close")
          .send(
            publicBody(
              "SCAN_API_CLOSED",
              "the scan API needs SCAN_API_TOKEN when the engine listens beyond loopback",
            ),
          );
      }
      if (
        config.SCAN_API_TOKEN &&
        !sameToken(request.headers.authorization, config.SCAN_API_TOKEN)
      ) {
        return reply
          .code(401)
          .header("connection", "close")
          .send(publicBody("UNAUTHORIZED", "a bearer token (SCAN_API_TOKEN) is required"));
      }
      const query = request.query as Record<string, string | undefined>;
      const declared = Number(request.headers["content-length"]);
      const multipart = request.isMultipart();
      const allowance = config.ARTIFACT_MAX_BYTES + (multipart ? multipartOverheadBytes : 0);
      if (Number.isFinite(declared) && declared > allowance) {
        return reply
          .code(413)
          .header("connection", "close")
          .send(
            publicBody("ARTIFACT_TOO_LARGE", tooLarge(config.ARTIFACT_MAX_BYTES).publicMessage),
          );
      }
      const requested = Number(query.timeout_ms);
      const timeoutMs =
        Number.isFinite(requested) && requested >= 1
          ? Math.min(requested, scanTimeout.maximum)
          : scanTimeout.default;
      const deadline = Date.now() + timeoutMs;

      let holding = false;
      // A waiter whose client went away leaves the queue at once.
      const gone = clientGone(reply);
      try {
        if (!slots.tryAcquire()) {
          // A plain timer held for the wait: a collected `AbortSignal.timeout` never fires.
          using waited = createScanSignal({ signal: gone, deadline, scanner: "microengine" });
          await slots.acquire(waited.signal).catch((error: unknown) => {
            if (gone.aborted)
              throw new EngineError({ message: "@engine/microengine: the client went away" });
            throw OverloadedError.isInstance(error)
              ? error
              : new OverloadedError({
                  message: "@engine/microengine: no scan slot freed up before timeout_ms",
                });
          });
        }
        holding = true;
        let artifact: Artifact;
        if (multipart) {
          const file = await request.file().catch((error: unknown) => {
            throw new InvalidOptionsError({
              message: `@engine/microengine: a malformed multipart body: ${(error as Error)?.message ?? String(error)}`,
              publicMessage: "a malformed multipart body",
              cause: error,
            });
          });
          if (!file)
            return reply.code(400).send(publicBody("BAD_REQUEST", "multipart body without a file"));
          const stream = file.file as Readable & { truncated?: boolean };
          artifact = artifactFromStream(
            limitedChunks(stream, config.ARTIFACT_MAX_BYTES, () => stream.truncated === true),
            {
              ...(file.filename ? { filename: file.filename.slice(0, 255) } : {}),
              ...(file.mimetype ? { mimetype: file.mimetype.slice(0, 255) } : {}),
            },
          );
        } else {
          const payload = request.body as Readable | undefined;
          const filename = typeof query.filename === "string" ? query.filename.slice(0, 255) : "";
          artifact = artifactFromStream(
            limitedChunks(payload ?? emptyBody(), config.ARTIFACT_MAX_BYTES),
            {
              ...(Number.isFinite(declared) && declared >= 0 ? { size: declared } : {}),
              ...(filename ? { filename } : {}),
            },
          );
        }
        metrics.inFlight.inc();
        try {
          const result = withEngineMetadata(await backends.scanner.scan(artifact, { deadline }));
          recordScan(metrics, result);
          return reply.send(result);
        } finally {
          metrics.inFlight.dec();
        }
      } catch (error) {
        const { code, message } = publicError(error);
        // A client error from the parsers (busboy limits, prototype keys) is the client's.
        const clientStatus = (error as { statusCode?: number })?.statusCode;
        const status = EngineError.isInstance(error)
          ? (scanStatus[code] ?? 503)
          : typeof clientStatus === "number" && clientStatus >= 400 && clientStatus < 500
            ? clientStatus
            : 500;
        if (status >= 500)
          request.log.warn(
            { code, error: redactUrls((error as Error)?.message ?? String(error)) },
            "scan failed",
          );
        if (code === "OVERLOADED") {
          metrics.overloaded.inc({ action: "refused_503" });
          reply.header("retry-after", String(retryAfterSeconds));
        }
        // The body may be partly unread (refused early, too large): close rather than drain it.
        reply.header("connection", "close");
        return reply
          .code(status)
          .send({ error: { code, message }, ...withEngineMetadata(scanResultForError(error)) });
      } finally {
        if (holding) slots.release();
      }
    });
  });

  // The webhook SDK's liveness check: a marketplace or load balancer may poll it.
  app.get("/", async () => ({ status: "OK" }));
  const probe = addOperationsRoutes(app, {
    backends,
    metrics,
  });

  app.get("/readyz", async (_request, reply) => {
    const { ready: backendsReady, checks } = await probe();
    let ready = backendsReady;
    if (processor.queueState) {
      const queue = await processor.queueState();
      checks.queue = queue;
      ready &&= queue.ok;
    }
    const load = processor.load();
    const status = !ready ? "not ready" : load.saturated ? "saturated" : "ready";
    return reply.code(ready && !load.saturated ? 200 : 503).send({
      status,
      inFlight: processor.inFlight,
      load,
      checks,
      // libuv's threads for file reads, DNS and the native scans (see cli.ts).
      threadPool: Number(process.env.UV_THREADPOOL_SIZE) || 4,
      cache: backends.cache,
    });
  });

  return app;
}
