import { createHash, timingSafeEqual } from "node:crypto";
import type { Readable } from "node:stream";
import {
  type Artifact,
  ArtifactTooLargeError,
  artifactFromStream,
  ConcurrencyLimit,
  createScanSignal,
  EngineError,
  type EngineErrorCode,
  InvalidOptionsError,
  OverloadedError,
  publicError,
  raceSignal,
  scanResultForError,
} from "@engine/core";
import type { Multipart } from "@fastify/multipart";
import fastifyMultipart from "@fastify/multipart";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineConfig } from "../config/config.js";
import { errorMessage, loggableMessage } from "../operations/error-message.js";
import { type EngineMetrics, recordScan } from "../operations/metrics.js";
import { withEngineMetadata } from "../protocol/engine-metadata.js";

/** What a multipart body may add around its file: boundaries, part headers. */
const multipartOverheadBytes = 64 * 1024;
/** Seconds a client is told to wait before retrying when the scan API is saturated. */
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

/** Public error body: a code and a short reason, never a path, an address or a stack. */
export function publicBody(code: string, message: string) {
  return { status: "ERROR", code, error: message };
}

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

/** A multipart body that is not exactly one file part. */
function notOneFile(detail: string, cause?: unknown): InvalidOptionsError {
  return new InvalidOptionsError({
    message: `@engine/microengine: a multipart body must hold exactly one part, the file: ${detail}`,
    publicMessage:
      "a multipart body must hold exactly one part, the file (send one file per request)",
    cause,
  });
}

/** The artifact of a request body, and what to check once it was scanned. */
interface BodyArtifact {
  artifact: Artifact;
  /**
   * Throws when the body held more than the artifact (a second file part, a text field):
   * the verdict on the first part is then not an answer for the body.
   */
  afterScan(signal: AbortSignal): Promise<void>;
}

/**
 * The one file of a multipart body. Every other part (a second file, a text field, before or
 * after it) refuses the request: a verdict on one part is no verdict on the others, and a
 * part that is silently dropped is a part nobody scanned.
 */
async function multipartArtifact(
  request: FastifyRequest,
  config: EngineConfig,
  signal: AbortSignal,
): Promise<BodyArtifact> {
  const parts = request.parts();
  const malformed = (error: unknown): InvalidOptionsError => {
    const code = (error as { code?: string })?.code;
    if (code === "FST_PARTS_LIMIT" || code === "FST_FILES_LIMIT" || code === "FST_FIELDS_LIMIT")
      return notOneFile("it holds more parts", error);
    return new InvalidOptionsError({
      message: `@engine/microengine: a malformed multipart body: ${errorMessage(error)}`,
      publicMessage: "a malformed multipart body",
      cause: error,
    });
  };
  // The part's head must arrive within timeout_ms, like the rest (it holds a scan slot).
  const first = await raceSignal(parts.next(), signal, "microengine").catch((error: unknown) => {
    if (signal.aborted) throw error;
    throw malformed(error);
  });
  const part = first.done ? undefined : (first.value as Multipart);
  if (!part) throw notOneFile("it holds no part");
  if (part.type !== "file") throw notOneFile("its first part is a text field");
  // A quoted-printable or base64 part is decoded by some parsers (Go's mime/multipart) and
  // not by others: the bytes scanned must be the bytes every reader sees.
  const transferEncoding = (part.encoding || "7bit").toLowerCase();
  if (!["7bit", "8bit", "binary"].includes(transferEncoding))
    throw new InvalidOptionsError({
      message: `@engine/microengine: a multipart file part with Content-Transfer-Encoding ${JSON.stringify(transferEncoding.slice(0, 32))}`,
      publicMessage:
        "a multipart file part must be sent as it is (Content-Transfer-Encoding binary, 8bit or 7bit)",
    });
  const stream = part.file as Readable & { truncated?: boolean };
  const artifact = artifactFromStream(
    limitedChunks(stream, config.ARTIFACT_MAX_BYTES, () => stream.truncated === true),
    {
      ...(part.filename ? { filename: part.filename.slice(0, 255) } : {}),
      ...(part.mimetype ? { mimetype: part.mimetype.slice(0, 255) } : {}),
    },
  );
  return {
    artifact,
    afterScan: async (signal) => {
      // A scanner may stop reading early (a detection): what is left of the file is drained,
      // then the body must end. The parser's limits (one part) turn any further part into an
      // error here.
      stream.resume();
      const next = await Promise.race([
        parts.next(),
        new Promise<never>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        }),
      ]).catch((error: unknown) => {
        if (signal.aborted) throw error;
        throw malformed(error);
      });
      if (!next.done) throw notOneFile("it holds a second part");
    },
  };
}

/** The artifact of a raw body (`?filename=` names it). */
function rawArtifact(
  request: FastifyRequest,
  config: EngineConfig,
  declared: number,
): BodyArtifact {
  const payload = request.body as Readable | undefined;
  const query = request.query as Record<string, string | undefined>;
  const filename = typeof query.filename === "string" ? query.filename.slice(0, 255) : "";
  const artifact = artifactFromStream(
    limitedChunks(payload ?? emptyBody(), config.ARTIFACT_MAX_BYTES),
    {
      ...(Number.isFinite(declared) && declared >= 0 ? { size: declared } : {}),
      ...(filename ? { filename } : {}),
    },
  );
  return { artifact, afterScan: async () => {} };
}

/** Waits for a scan slot until `deadline` (or the client leaves); OverloadedError when none frees up. */
async function takeSlot(slots: ConcurrencyLimit, deadline: number, gone: AbortSignal) {
  if (slots.tryAcquire()) return;
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

/** The HTTP status of a failed scan request: the error's, a parser's 4xx, else 500. */
function failureStatus(error: unknown, code: EngineErrorCode): number {
  const clientStatus = (error as { statusCode?: number })?.statusCode;
  if (EngineError.isInstance(error)) return scanStatus[code] ?? 503;
  return typeof clientStatus === "number" && clientStatus >= 400 && clientStatus < 500
    ? clientStatus
    : 500;
}

/** What the scan API needs. */
export interface ScanRoutesOptions {
  config: EngineConfig;
  backends: EngineBackends;
  metrics: EngineMetrics;
  /** Its slots: see {@link createScanSlots}. */
  slots: ConcurrencyLimit;
}

/**
 * The scan API's own slots: SCAN_API_CONCURRENCY scans at once, SCAN_API_BACKLOG waiting
 * (slow uploads never take the bounties' slots).
 */
export function createScanSlots(config: EngineConfig): ConcurrencyLimit {
  return new ConcurrencyLimit({
    concurrency: config.SCAN_API_CONCURRENCY,
    maxWaiting: config.SCAN_API_BACKLOG,
    what: "scan API slots (SCAN_API_CONCURRENCY)",
  });
}

/**
 * `POST /scan` as a Fastify plugin: a raw body (`?filename=`), or a multipart body of exactly
 * one file part, streamed to the engine's scanner and bounded by ARTIFACT_MAX_BYTES as it
 * arrives, within its own slots. Open on a loopback HOST, or with SCAN_API_TOKEN.
 */
export async function scanRoutes(scanApi: FastifyInstance, options: ScanRoutesOptions) {
  const { config, backends, metrics, slots } = options;
  const scanApiOpen = config.SCAN_API_TOKEN !== undefined || isLoopbackHost(config.HOST);
  // Bodies stream through, bounded by ARTIFACT_MAX_BYTES as they arrive.
  scanApi.removeAllContentTypeParsers();
  // One byte over the cap reaches our counter, so an oversize file fails instead of being cut.
  // One part: a second one (file or field) is an error the handler sees, never dropped.
  await scanApi.register(fastifyMultipart, {
    limits: {
      fileSize: config.ARTIFACT_MAX_BYTES + 1,
      files: 1,
      fields: 0,
      fieldSize: 4096,
      parts: 1,
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
    if (config.SCAN_API_TOKEN && !sameToken(request.headers.authorization, config.SCAN_API_TOKEN)) {
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
        .send(publicBody("ARTIFACT_TOO_LARGE", tooLarge(config.ARTIFACT_MAX_BYTES).publicMessage));
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
      await takeSlot(slots, deadline, gone);
      holding = true;
      using arrival = createScanSignal({ signal: gone, deadline, scanner: "microengine" });
      const body = multipart
        ? await multipartArtifact(request, config, arrival.signal)
        : rawArtifact(request, config, declared);
      metrics.inFlight.inc();
      let result: ReturnType<typeof withEngineMetadata>;
      try {
        result = withEngineMetadata(await backends.scanner.scan(body.artifact, { deadline }));
      } finally {
        metrics.inFlight.dec();
        slots.release();
        holding = false;
      }
      using rest = createScanSignal({ signal: gone, deadline, scanner: "microengine" });
      await body.afterScan(rest.signal);
      recordScan(metrics, result);
      return reply.send(result);
    } catch (error) {
      const { code, message } = publicError(error);
      // A client error from the parsers (busboy limits, prototype keys) is the client's.
      const status = failureStatus(error, code);
      if (status >= 500) request.log.warn({ code, error: loggableMessage(error) }, "scan failed");
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
}
