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
import type { Multipart, MultipartFile } from "@fastify/multipart";
import fastifyMultipart from "@fastify/multipart";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { EngineBackends } from "../backends/build-backends.js";
import type { EngineConfig } from "../config/config.js";
import { errorMessage, loggableMessage } from "../operations/error-message.js";
import { type EngineMetrics, recordScan } from "../operations/metrics.js";
import { withEngineMetadata } from "../protocol/engine-metadata.js";
import { holdBody } from "./held-body.js";
import { refuseAndClose } from "./public-body.js";

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

/** A multipart parser's error as the client's: a part past the limits (one part), or a malformed body. */
function malformedMultipart(error: unknown): InvalidOptionsError {
  const code = (error as { code?: string })?.code;
  if (code === "FST_PARTS_LIMIT" || code === "FST_FILES_LIMIT" || code === "FST_FIELDS_LIMIT")
    return notOneFile("it holds more parts", error);
  return new InvalidOptionsError({
    message: `@engine/microengine: a malformed multipart body: ${errorMessage(error)}`,
    publicMessage: "a malformed multipart body",
    cause: error,
  });
}

/** A handler for a failed wait on the parser: `signal`'s own error as it is, any other as {@link malformedMultipart}. */
function failedPartWait(signal: AbortSignal) {
  return (error: unknown): never => {
    if (signal.aborted) throw error;
    throw malformedMultipart(error);
  };
}

/**
 * Refuses a file part sent quoted-printable or base64: some parsers decode it (Go's
 * mime/multipart), others do not, and the bytes scanned must be the bytes every reader sees.
 */
function refuseEncodedPart(part: MultipartFile): void {
  const transferEncoding = (part.encoding || "7bit").toLowerCase();
  if (!["7bit", "8bit", "binary"].includes(transferEncoding))
    throw new InvalidOptionsError({
      message: `@engine/microengine: a multipart file part with Content-Transfer-Encoding ${JSON.stringify(transferEncoding.slice(0, 32))}`,
      publicMessage:
        "a multipart file part must be sent as it is (Content-Transfer-Encoding binary, 8bit or 7bit)",
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
 * After the scan of a multipart body's file: what is left of the file is drained (a scanner
 * may stop reading early, on a detection), then the body must end. The parser's limits (one
 * part) turn any further part into an error here.
 */
async function expectBodyEnd(
  parts: AsyncIterableIterator<Multipart>,
  file: Readable,
  signal: AbortSignal,
): Promise<void> {
  file.resume();
  const next = await Promise.race([
    parts.next(),
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    }),
  ]).catch(failedPartWait(signal));
  if (!next.done) throw notOneFile("it holds a second part");
}

/**
 * The one file of a multipart body, bounded by `maxBytes`. Every other part (a second file, a
 * text field, before or after it) refuses the request: a verdict on one part is no verdict on
 * the others, and a part that is silently dropped is a part nobody scanned.
 */
async function multipartArtifact(
  request: FastifyRequest,
  maxBytes: number,
  signal: AbortSignal,
): Promise<BodyArtifact> {
  const parts = request.parts();
  // The part's head must arrive within timeout_ms, like the rest (it holds a scan slot).
  const first = await raceSignal(parts.next(), signal, "microengine").catch(failedPartWait(signal));
  const part = first.done ? undefined : (first.value as Multipart);
  if (!part) throw notOneFile("it holds no part");
  if (part.type !== "file") throw notOneFile("its first part is a text field");
  refuseEncodedPart(part);
  const stream = part.file as Readable & { truncated?: boolean };
  const artifact = artifactFromStream(
    limitedChunks(stream, maxBytes, () => stream.truncated === true),
    {
      ...(part.filename ? { filename: part.filename.slice(0, 255) } : {}),
      ...(part.mimetype ? { mimetype: part.mimetype.slice(0, 255) } : {}),
    },
  );
  return { artifact, afterScan: (signal) => expectBodyEnd(parts, stream, signal) };
}

/** The artifact of a raw body of `declared` bytes (`?filename=` names it), bounded by `maxBytes`. */
function rawArtifact(request: FastifyRequest, maxBytes: number, declared: number): BodyArtifact {
  const payload = request.body as Readable | undefined;
  const query = request.query as Record<string, string | undefined>;
  const filename = typeof query.filename === "string" ? query.filename.slice(0, 255) : "";
  const artifact = artifactFromStream(limitedChunks(payload ?? emptyBody(), maxBytes), {
    ...(Number.isFinite(declared) && declared >= 0 ? { size: declared } : {}),
    ...(filename ? { filename } : {}),
  });
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

/** The settings the scan API reads. */
export type ScanRoutesConfig = Pick<EngineConfig, "ARTIFACT_MAX_BYTES" | "HOST" | "SCAN_API_TOKEN">;

/** The settings of the scan API's slots. */
export type ScanSlotsConfig = Pick<EngineConfig, "SCAN_API_CONCURRENCY" | "SCAN_API_BACKLOG">;

/** What the scan API needs. */
export interface ScanRoutesOptions {
  config: ScanRoutesConfig;
  /** Its `scanner`: the engine's, behind the result cache when it is on. */
  backends: Pick<EngineBackends, "scanner">;
  metrics: EngineMetrics;
  /** Its slots: see {@link createScanSlots}. */
  slots: ConcurrencyLimit;
}

/**
 * The scan API's own slots: SCAN_API_CONCURRENCY scans at once, SCAN_API_BACKLOG waiting
 * (slow uploads never take the bounties' slots).
 */
export function createScanSlots(config: ScanSlotsConfig): ConcurrencyLimit {
  return new ConcurrencyLimit({
    concurrency: config.SCAN_API_CONCURRENCY,
    maxWaiting: config.SCAN_API_BACKLOG,
    what: "scan API slots (SCAN_API_CONCURRENCY)",
  });
}

/**
 * Refuses a scan request its caller may not make, before its body is read (so the connection
 * closes): 403 while the scan API is closed (no SCAN_API_TOKEN and a HOST beyond loopback),
 * 401 without the bearer token. Undefined when the request may go on.
 */
function refuseAccess(config: ScanRoutesConfig, request: FastifyRequest, reply: FastifyReply) {
  if (config.SCAN_API_TOKEN === undefined && !isLoopbackHost(config.HOST))
    return refuseAndClose(
      reply,
      403,
      "SCAN_API_CLOSED",
      "the scan API needs SCAN_API_TOKEN when the engine listens beyond loopback",
    );
  if (config.SCAN_API_TOKEN && !sameToken(request.headers.authorization, config.SCAN_API_TOKEN))
    return refuseAndClose(
      reply,
      401,
      "UNAUTHORIZED",
      "a bearer token (SCAN_API_TOKEN) is required",
    );
  return undefined;
}

/** What a scan request declares: its body's length and kind, and its deadline. */
interface ScanRequest {
  /** `content-length` (NaN when chunked). */
  declared: number;
  multipart: boolean;
  /** Now plus `?timeout_ms=` (default 30 s, at most 600 s), in ms since the epoch. */
  deadline: number;
}

/** Reads what a scan request declares (see {@link ScanRequest}). */
function readScanRequest(request: FastifyRequest): ScanRequest {
  const query = request.query as Record<string, string | undefined>;
  const requested = Number(query.timeout_ms);
  const timeoutMs =
    Number.isFinite(requested) && requested >= 1
      ? Math.min(requested, scanTimeout.maximum)
      : scanTimeout.default;
  return {
    declared: Number(request.headers["content-length"]),
    multipart: request.isMultipart(),
    deadline: Date.now() + timeoutMs,
  };
}

/** True when the declared length is over ARTIFACT_MAX_BYTES (plus a multipart body's overhead). */
function declaredTooLarge(scan: ScanRequest, maxBytes: number): boolean {
  const allowance = maxBytes + (scan.multipart ? multipartOverheadBytes : 0);
  return Number.isFinite(scan.declared) && scan.declared > allowance;
}

/**
 * Scans the request's body within a scan slot, taken before the body is read and given back
 * as soon as the scan is done; then checks the body held nothing else and counts the scan.
 */
async function scanBody(
  options: ScanRoutesOptions,
  request: FastifyRequest,
  scan: ScanRequest,
  gone: AbortSignal,
) {
  const { config, backends, metrics, slots } = options;
  const { deadline } = scan;
  await takeSlot(slots, deadline, gone);
  let holding = true;
  try {
    using arrival = createScanSignal({ signal: gone, deadline, scanner: "microengine" });
    const body = scan.multipart
      ? await multipartArtifact(request, config.ARTIFACT_MAX_BYTES, arrival.signal)
      : rawArtifact(request, config.ARTIFACT_MAX_BYTES, scan.declared);
    // Held whole and hashed by the engine: the result cache keys on that hash (a repeated
    // upload is answered from it, as a repeated bounty is).
    const held = await holdBody(
      body.artifact,
      { maxBytes: config.ARTIFACT_MAX_BYTES },
      arrival.signal,
    );
    metrics.inFlight.inc();
    let result: ReturnType<typeof withEngineMetadata>;
    try {
      result = withEngineMetadata(await backends.scanner.scan(held.artifact, { deadline }));
    } finally {
      metrics.inFlight.dec();
      slots.release();
      holding = false;
      await held.dispose();
    }
    using rest = createScanSignal({ signal: gone, deadline, scanner: "microengine" });
    await body.afterScan(rest.signal);
    recordScan(metrics, result);
    return result;
  } finally {
    if (holding) slots.release();
  }
}

/**
 * The answer to a failed scan request: the error's status (a parser's 4xx is the client's),
 * its public code and reason and the `unknown` result; 503 with Retry-After when overloaded.
 * The connection closes: the body may be partly unread (refused early, too large).
 */
function answerScanFailure(
  request: FastifyRequest,
  reply: FastifyReply,
  metrics: EngineMetrics,
  error: unknown,
) {
  const { code, message } = publicError(error);
  const status = failureStatus(error, code);
  if (status >= 500) request.log.warn({ code, error: loggableMessage(error) }, "scan failed");
  if (code === "OVERLOADED") {
    metrics.overloaded.inc({ action: "refused_503" });
    reply.header("retry-after", String(retryAfterSeconds));
  }
  reply.header("connection", "close");
  return reply
    .code(status)
    .send({ error: { code, message }, ...withEngineMetadata(scanResultForError(error)) });
}

/** `POST /scan`: access checked, the declared size and timeout read, then the scan or its failure. */
async function answerScan(
  options: ScanRoutesOptions,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const { config, metrics } = options;
  const refused = refuseAccess(config, request, reply);
  if (refused) return refused;
  const scan = readScanRequest(request);
  if (declaredTooLarge(scan, config.ARTIFACT_MAX_BYTES))
    return refuseAndClose(
      reply,
      413,
      "ARTIFACT_TOO_LARGE",
      tooLarge(config.ARTIFACT_MAX_BYTES).publicMessage,
    );
  // A waiter whose client went away leaves the queue at once.
  const gone = clientGone(reply);
  try {
    return reply.send(await scanBody(options, request, scan, gone));
  } catch (error) {
    return answerScanFailure(request, reply, metrics, error);
  }
}

/**
 * `POST /scan` as a Fastify plugin: a raw body (`?filename=`), or a multipart body of exactly
 * one file part, streamed to the engine's scanner and bounded by ARTIFACT_MAX_BYTES as it
 * arrives, within its own slots. Open on a loopback HOST, or with SCAN_API_TOKEN.
 */
export async function scanRoutes(scanApi: FastifyInstance, options: ScanRoutesOptions) {
  const { ARTIFACT_MAX_BYTES: maxBytes } = options.config;
  // Bodies stream through, bounded by ARTIFACT_MAX_BYTES as they arrive.
  scanApi.removeAllContentTypeParsers();
  // One byte over the cap reaches our counter, so an oversize file fails instead of being cut.
  // One part: a second one (file or field) is an error the handler sees, never dropped.
  await scanApi.register(fastifyMultipart, {
    limits: {
      fileSize: maxBytes + 1,
      files: 1,
      fields: 0,
      fieldSize: 4096,
      parts: 1,
      headerPairs: 64,
    },
  });
  scanApi.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
  scanApi.post("/scan", (request, reply) => answerScan(options, request, reply));
}
