import { Transform } from "node:stream";
import {
  type Artifact,
  ArtifactTooLargeError,
  artifactFromStream,
  EngineError,
  scanResultForError,
} from "@engine/core";
import fastifyMultipart from "@fastify/multipart";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { BountyBodyError, parseBountyBody } from "./bounty.js";
import type { BountyIntake } from "./bounty-processor.js";
import { recordScan, withEngineMetadata } from "./bounty-processor.js";
import type { EngineConfig } from "./config.js";
import type { EngineBackends } from "./engine-backends.js";
import type { EngineMetrics } from "./metrics.js";
import { verifySignature } from "./webhook-signature.js";

/** Webhook bodies are small JSON documents (a data: URI may carry a small artifact). */
function webhookBodyLimit(config: EngineConfig): number {
  return Math.max(
    1024 * 1024,
    Math.min(Math.ceil(config.ARTIFACT_MAX_BYTES * 1.4) + 65_536, 64 * 1024 * 1024),
  );
}

/** Fails a stream with ArtifactTooLargeError once it passes `maxBytes`. */
function sizeLimited(maxBytes: number): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      total += chunk.length;
      if (total > maxBytes) {
        callback(
          new ArtifactTooLargeError({
            message: `@engine/microengine: the body is larger than ARTIFACT_MAX_BYTES (${maxBytes} bytes)`,
          }),
        );
        return;
      }
      callback(null, chunk);
    },
  });
}

/**
 * The engine's HTTP server: the PolySwarm webhook (`POST /`), the scan API (`POST /scan`),
 * `GET /healthz`, `GET /readyz` and `GET /metrics`.
 */
export async function createServer(options: {
  config: EngineConfig;
  backends: EngineBackends;
  processor: BountyIntake;
  metrics: EngineMetrics;
  logger: Logger;
}) {
  const { config, backends, processor, metrics } = options;
  // Fastify logs every request at info: its own logger stays at warn, the engine logs bounties itself.
  const httpLogger = options.logger.child(
    { component: "http" },
    { level: options.logger.levelVal > 40 ? options.logger.level : "warn" },
  );
  const app = Fastify({ loggerInstance: httpLogger, bodyLimit: webhookBodyLimit(config) });
  await app.register(fastifyMultipart, {
    limits: { fileSize: config.ARTIFACT_MAX_BYTES, files: 1 },
  });

  // Raw bodies: the signature is over the exact bytes received.
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, body, done) =>
    done(null, body),
  );
  app.addContentTypeParser("*", (_request, payload, done) => done(null, payload));

  app.post("/", async (request: FastifyRequest, reply: FastifyReply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (config.WEBHOOK_SECRET) {
      const signature = request.headers["x-polyswarm-signature"];
      if (typeof signature !== "string" || signature.length === 0) {
        return reply.code(400).send({ status: "ERROR", error: "missing X-POLYSWARM-SIGNATURE" });
      }
      if (!verifySignature(config.WEBHOOK_SECRET, body, signature)) {
        return reply
          .code(401)
          .send({ status: "ERROR", error: "X-POLYSWARM-SIGNATURE does not match the body" });
      }
    }
    const event = String(request.headers["x-polyswarm-event"] ?? "").toLowerCase();
    if (event === "ping") return reply.code(200).send({ status: "OK" });
    if (event !== "bounty")
      return reply
        .code(400)
        .send({ status: "ERROR", error: `unknown X-POLYSWARM-EVENT ${JSON.stringify(event)}` });
    let bounty: ReturnType<typeof parseBountyBody>;
    try {
      bounty = parseBountyBody(body);
    } catch (error) {
      if (error instanceof BountyBodyError)
        return reply.code(400).send({ status: "ERROR", error: error.message });
      throw error;
    }
    const delivery = request.headers["x-polyswarm-delivery"];
    const outcome = await processor.submit(
      bounty,
      typeof delivery === "string" ? delivery : undefined,
    );
    return reply
      .code(202)
      .send({ status: "ACCEPTED", ...(outcome === "duplicate" ? { duplicate: true } : {}) });
  });

  app.post("/scan", async (request, reply) => {
    if (
      config.SCAN_API_TOKEN &&
      request.headers.authorization !== `Bearer ${config.SCAN_API_TOKEN}`
    ) {
      return reply.code(401).send({ error: "a bearer token (SCAN_API_TOKEN) is required" });
    }
    const declared = Number(request.headers["content-length"]);
    if (Number.isFinite(declared) && declared > config.ARTIFACT_MAX_BYTES) {
      return reply.code(413).send({
        error: `the body is larger than ARTIFACT_MAX_BYTES (${config.ARTIFACT_MAX_BYTES} bytes)`,
      });
    }
    let artifact: Artifact;
    if (request.isMultipart()) {
      const file = await request.file();
      if (!file) return reply.code(400).send({ error: "multipart body without a file" });
      artifact = artifactFromStream(file.file.pipe(sizeLimited(config.ARTIFACT_MAX_BYTES)), {
        ...(file.filename ? { filename: file.filename } : {}),
        ...(file.mimetype ? { mimetype: file.mimetype } : {}),
      });
    } else {
      const payload = request.body as NodeJS.ReadableStream | Buffer | undefined;
      const stream = Buffer.isBuffer(payload)
        ? [payload].values()
        : (payload as NodeJS.ReadableStream).pipe(sizeLimited(config.ARTIFACT_MAX_BYTES));
      const filename = (request.query as Record<string, string | undefined>).filename;
      artifact = artifactFromStream(stream as never, {
        ...(Number.isFinite(declared) ? { size: declared } : {}),
        ...(filename ? { filename } : {}),
      });
    }
    const timeoutMs = Math.min(
      Number((request.query as Record<string, string | undefined>).timeout_ms ?? 30_000) || 30_000,
      600_000,
    );
    metrics.inFlight.inc();
    try {
      const result = withEngineMetadata(
        await backends.scanner.scan(artifact, { deadline: Date.now() + timeoutMs }),
      );
      recordScan(metrics, result);
      return reply.send(result);
    } catch (error) {
      const code = EngineError.isInstance(error) ? error.code : "ENGINE_ERROR";
      const status =
        code === "ARTIFACT_TOO_LARGE"
          ? 413
          : code === "INVALID_OPTIONS"
            ? 400
            : code === "SCAN_TIMEOUT"
              ? 504
              : 503;
      return reply.code(status).send({
        error: EngineError.isInstance(error) ? error.toJSON() : { code, message: String(error) },
        ...withEngineMetadata(scanResultForError(error)),
      });
    } finally {
      metrics.inFlight.dec();
    }
  });

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    const checks: Record<string, unknown> = {};
    let ready = true;
    if (backends.clamav) {
      try {
        await backends.clamav.client.ping({ deadline: Date.now() + 2_000 });
        const version = await backends.clamav.version();
        const age = version.databaseDate
          ? Math.round((Date.now() - Date.parse(version.databaseDate)) / 3_600_000)
          : undefined;
        checks.clamav = {
          ok: true,
          engine: version.engineVersion,
          database: version.databaseVersion ?? "custom",
          ...(age === undefined ? {} : { databaseAgeHours: age }),
        };
      } catch (error) {
        ready = false;
        checks.clamav = { ok: false, error: (error as Error).message };
      }
    }
    if (backends.yara) {
      const ok = backends.yara.ruleFileCount > 0;
      ready &&= ok;
      checks.yara = {
        ok,
        ruleFiles: backends.yara.ruleFileCount,
        rules: backends.yara.signaturesVersion,
      };
    }
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? "ready" : "not ready", inFlight: processor.inFlight, checks });
  });

  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  return app;
}
