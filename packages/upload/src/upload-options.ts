import type { Scanner } from "@engine/core";
import { z } from "zod";
import type { UploadedFile, UploadOutcome } from "./outcome.js";
import type { StorageSink } from "./storage/storage-sink.js";

const MiB = 1024 * 1024;

const count = z.number().int().positive();
const bytes = z.number().int().positive();

/** The upload limits; each one past is a 413 (see `UploadProblemCode`). */
export const uploadLimitsSchema = z.strictObject({
  /** Bytes of one file. Default 25 MiB. */
  fileBytes: bytes.default(25 * MiB),
  /** Bytes of the whole request body (files, fields, multipart framing). Default 100 MiB. */
  requestBytes: bytes.default(100 * MiB),
  /** Files in one request. Default 10. */
  files: count.default(10),
  /** Text fields in one request. Default 100. */
  fields: count.default(100),
  /** Bytes of one text field's value. Default 1 MiB. */
  fieldBytes: bytes.default(MiB),
  /** Parts (files and fields) in one request. Default 200. */
  parts: count.default(200),
});

/** What the guard does with a verdict that is neither benign nor malicious. */
const verdictAction = z.enum(["reject", "accept"]);

const scannerSchema = z.custom<Scanner>(
  (value) =>
    typeof value === "object" &&
    value !== null &&
    typeof (value as Scanner).scan === "function" &&
    typeof (value as Scanner).name === "string",
  { message: "expected a scanner of @engine/* (an object with name and scan())" },
);

const sinkSchema = z.custom<StorageSink>(
  (value) =>
    typeof value === "object" &&
    value !== null &&
    typeof (value as StorageSink).open === "function",
  { message: "expected a storage sink (an object with open()): diskStorage() or memoryStorage()" },
);

/** `createUploadGuard`'s options, validated when the guard is created. */
export const uploadGuardOptionsSchema = z.strictObject({
  /** The scanner every file goes through (a backend, a multi, a cached or unpacking one). */
  scanner: scannerSchema,
  /** Where accepted files are kept (written while they are scanned, committed after). */
  storage: sinkSchema,
  /** Where refused files go instead of nowhere (for analysts); none by default. */
  quarantine: sinkSchema.optional(),
  /** Bounds of a request (see {@link uploadLimitsSchema}). */
  limits: uploadLimitsSchema.default(uploadLimitsSchema.parse({})),
  /**
   * The types a file may have, by its content (magic bytes), as MIME types
   * (`"image/png"`, `"application/pdf"`). Types with no magic bytes (`text/plain`,
   * `text/csv`, `application/json`, `image/svg+xml`, ...) pass only when named here, and only
   * when the content is text. Absent: every type is allowed (and still scanned).
   */
  allowedTypes: z.array(z.string().min(3).toLowerCase()).min(1).optional(),
  /**
   * Milliseconds from the start of a request to its end, scans included (the absolute
   * deadline every scan is given). Default 30,000.
   */
  timeoutMs: z.number().int().positive().default(30_000),
  /** A `suspicious` verdict: refused (`"reject"`, the default) or kept. */
  suspicious: verdictAction.default("reject"),
  /** An `unknown` verdict (nothing could look inside): refused (the default) or kept. */
  unknown: verdictAction.default("reject"),
  /**
   * A request where some files are refused and others not: `"reject-request"` (the default)
   * refuses it all and keeps nothing; `"per-file"` keeps the accepted files and answers with
   * each file's outcome (only verdicts and types are decided per file: a limit, a timeout or
   * a scanner failure still refuses the whole request).
   */
  onRefusedFile: z.enum(["reject-request", "per-file"]).default("reject-request"),
  /** Seconds a 503 asks the client to wait (`Retry-After`). Default 30. */
  retryAfterSeconds: z.number().int().positive().default(30),
  /**
   * Called once per file with what became of it, before anything is committed (audit logs,
   * metrics). A hook that throws refuses the request (`internal-error`), nothing kept.
   */
  onFile: z
    .custom<(file: UploadedFile) => void | Promise<void>>((value) => typeof value === "function")
    .optional(),
  /** Called once per request with its outcome, after files were committed or discarded. */
  onOutcome: z
    .custom<(outcome: UploadOutcome) => void | Promise<void>>(
      (value) => typeof value === "function",
    )
    .optional(),
});

/** Options of {@link createUploadGuard} (see each field for its default). */
export type UploadGuardOptions = z.input<typeof uploadGuardOptionsSchema>;
/** The options with their defaults filled in. */
export type ResolvedUploadGuardOptions = z.output<typeof uploadGuardOptionsSchema>;
/** The limits with their defaults filled in. */
export type UploadLimits = z.output<typeof uploadLimitsSchema>;
