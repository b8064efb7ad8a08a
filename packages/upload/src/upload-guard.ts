import { defineScanner, keepsContract, parseOptions, type Scanner } from "@engine/core";
import type { InspectedFile } from "./file-inspection.js";
import { readMultipart, type UploadBody } from "./multipart-request.js";
import type { UploadedFile, UploadFields, UploadOutcome } from "./outcome.js";
import { type ProblemFile, problemOf, type UploadProblemCode } from "./problems.js";
import { gravestCode, perFileCodes } from "./refusal-codes.js";
import {
  type ResolvedUploadGuardOptions,
  type UploadGuardOptions,
  uploadGuardOptionsSchema,
} from "./upload-options.js";
import { UploadRefusal } from "./upload-refusal.js";

/** One HTTP request as the guard reads it (the adapters build it from their framework's). */
export interface UploadRequest {
  /** The request headers, names in lowercase (`content-type` with its boundary at least). */
  headers: Record<string, string | string[] | undefined>;
  /** The body, read once as a stream. */
  body: UploadBody;
  /** Fires when the client goes away: the scan is aborted and nothing is kept. */
  signal?: AbortSignal | undefined;
}

/** What {@link createUploadGuard} returns. */
export interface UploadGuard {
  /** The options in force (defaults filled in). */
  readonly options: ResolvedUploadGuardOptions;
  /**
   * Reads one `multipart/form-data` request: each file typed by its content, written to
   * storage while it is scanned, and kept only when the verdict and the policy allow it.
   * Never rejects: every failure is an outcome with a problem (and nothing kept).
   */
  handle(request: UploadRequest): Promise<UploadOutcome>;
}

/**
 * Creates the framework-independent upload guard the adapters (`@engine/upload/express`,
 * `/fastify`, ...) wrap. Options are validated here (zod): a missing scanner or storage is
 * an `InvalidOptionsError` at start-up, not at the first upload.
 *
 * @example
 * const guard = createUploadGuard({ scanner, storage: diskStorage({ directory: "uploads" }) });
 * const outcome = await guard.handle({ headers: req.headers, body: req });
 * if (!outcome.ok) res.writeHead(outcome.problem.status, problemHeaders(outcome.problem));
 */
export function createUploadGuard(options: UploadGuardOptions): UploadGuard {
  const parsed = parseOptions(uploadGuardOptionsSchema, options, {
    where: "@engine/upload: createUploadGuard",
  });
  const settings = { ...parsed, scanner: withContract(parsed.scanner) };
  return {
    options: settings,
    handle: (request) => handleRequest(request, settings).catch((error: unknown) => failed(error)),
  };
}

/**
 * The scanner as `defineScanner` keeps it: its result validated (an `undefined` or a verdict
 * outside the contract is the scanner's error, never a pass) and its errors typed. Scanners
 * of `@engine/*` already are; anything else written by hand is wrapped.
 */
function withContract(scanner: Scanner): Scanner {
  if (keepsContract(scanner)) return scanner;
  return defineScanner({
    name: scanner.name,
    scan: (artifact, context) => scanner.scan(artifact, context),
  });
}

/** What `handle` answers if the guard itself failed (it never rejects). */
function failed(error: unknown): UploadOutcome {
  return {
    ok: false,
    problem: problemOf("internal-error"),
    fields: {},
    files: [],
    cause: error,
    bodyUnread: true,
  };
}

/** One request: its bounds set up (deadline, client abort), read, then decided. */
async function handleRequest(
  request: UploadRequest,
  options: ResolvedUploadGuardOptions,
): Promise<UploadOutcome> {
  const controller = new AbortController();
  const refuse = (code: UploadProblemCode, cause?: unknown) => {
    if (!controller.signal.aborted) controller.abort(new UploadRefusal(code, { cause }));
  };
  // Held here until the request ends (cleared in `finally`), so it cannot be collected early.
  const timer = setTimeout(() => refuse("scan-timeout"), options.timeoutMs);
  const onClientGone = () => refuse("upload-aborted", request.signal?.reason);
  if (request.signal?.aborted) onClientGone();
  request.signal?.addEventListener("abort", onClientGone, { once: true });
  const inspected: InspectedFile[] = [];
  let refusing = false;
  let fields: UploadFields = {};
  try {
    const context = {
      options,
      signal: controller.signal,
      deadline: Date.now() + options.timeoutMs,
      refusing: () => refusing,
      refuse,
    };
    const read = await readMultipart(request, context, (file) => {
      inspected.push(file);
      if (file.file.decision === "refused" && options.onRefusedFile === "reject-request")
        refusing = true;
    });
    fields = read.fields;
    return await settle(inspected, fields, options, controller.signal);
  } catch (error) {
    const refusal =
      controller.signal.aborted && controller.signal.reason instanceof UploadRefusal
        ? controller.signal.reason
        : error instanceof UploadRefusal
          ? error
          : new UploadRefusal("internal-error", { cause: error });
    await Promise.allSettled(inspected.map((file) => file.writer?.discard()));
    return refused(
      verdictFirst(refusal, inspected),
      fields,
      inspected,
      controller.signal.aborted,
      options,
    );
  } finally {
    clearTimeout(timer);
    request.signal?.removeEventListener("abort", onClientGone);
  }
}

/**
 * The refusal a request answers with: a file found malicious or suspicious before the request
 * failed otherwise (a limit after it, say) is what the client most needs to know.
 */
function verdictFirst(refusal: UploadRefusal, inspected: readonly InspectedFile[]): UploadRefusal {
  const verdicts = inspected.flatMap(({ file }) =>
    file.code === "malicious" || file.code === "suspicious" ? [file.code] : [],
  );
  const gravest = gravestCode(verdicts);
  return gravest && refusal.code !== gravest
    ? new UploadRefusal(gravest, { cause: refusal })
    : refusal;
}

/** The files of a problem body: what the client may know of each. */
function problemFiles(files: readonly UploadedFile[]): ProblemFile[] {
  return files.map((file) => ({
    field: file.field,
    filename: file.filename,
    ...(file.code ? { code: file.code } : {}),
  }));
}

/** The outcome of a request refused as a whole (nothing kept). */
async function refused(
  refusal: UploadRefusal,
  fields: UploadFields,
  inspected: readonly InspectedFile[],
  bodyUnread: boolean,
  options: ResolvedUploadGuardOptions,
): Promise<UploadOutcome> {
  const files = inspected.map(({ file }) =>
    file.decision === "accepted" ? { ...file, decision: "refused" as const } : file,
  );
  const outcome: UploadOutcome = {
    ok: false,
    problem: problemOf(refusal.code, {
      retryAfterSeconds: options.retryAfterSeconds,
      files: problemFiles(files),
    }),
    fields,
    files,
    cause: refusal.cause ?? refusal,
    bodyUnread,
  };
  await notify(options, outcome);
  return outcome;
}

/**
 * A request read to its end: each file reported (`onFile`), then the accepted ones committed,
 * or, when a file was refused and the policy refuses the request, all discarded.
 */
async function settle(
  inspected: InspectedFile[],
  fields: UploadFields,
  options: ResolvedUploadGuardOptions,
  signal: AbortSignal,
): Promise<UploadOutcome> {
  // The deadline or the client going away during the hooks or the commits refuses the
  // request too: what was committed is discarded by the caller.
  const stillLive = () => {
    if (signal.aborted) throw signal.reason;
  };
  for (const { file } of inspected) await options.onFile?.(file);
  stillLive();
  const refusedCodes = inspected.flatMap(({ file }) => (file.code ? [file.code] : []));
  const gravest = gravestCode(refusedCodes);
  if (gravest && (options.onRefusedFile === "reject-request" || !perFileCodes.has(gravest)))
    throw new UploadRefusal(gravest);
  const files: UploadedFile[] = [];
  for (const { file, writer } of inspected) {
    if (!writer) {
      files.push(file);
      continue;
    }
    try {
      files.push({ ...file, stored: await writer.commit() });
    } catch (error) {
      throw new UploadRefusal("storage-failed", { cause: error });
    }
    stillLive();
  }
  const outcome: UploadOutcome = { ok: true, fields, files };
  await notify(options, outcome);
  return outcome;
}

/** Calls `onOutcome`; what it throws is not the client's concern and changes nothing. */
async function notify(options: ResolvedUploadGuardOptions, outcome: UploadOutcome): Promise<void> {
  try {
    await options.onOutcome?.(outcome);
  } catch {
    // The outcome is decided (and committed); a failing audit hook cannot undo it.
  }
}
