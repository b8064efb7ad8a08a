/**
 * Why an upload (or one file of it) was refused: a stable code, the same in every adapter.
 *
 * - `malicious`, `suspicious`: the scanner's verdict (422).
 * - `not-inspectable`: the scanner could not look inside (encrypted, over one of its limits,
 *   a format it cannot read): its verdict was `unknown` (422).
 * - `type-not-allowed`: the content's type (by its magic bytes) is not in `allowedTypes` (415).
 * - `file-too-large`, `request-too-large`, `too-many-files`, `too-many-fields`,
 *   `too-many-parts`, `field-too-large`: a limit (413).
 * - `malformed-multipart`: not `multipart/form-data`, or a body that does not parse (400).
 * - `upload-aborted`: the client went away or the body ended early (400; rarely seen by it).
 * - `scanner-unavailable`, `scanner-overloaded`: the scanner could not scan now (503, with
 *   `Retry-After`).
 * - `scan-timeout`: the scan did not finish by `timeoutMs` (504).
 * - `storage-failed`, `internal-error`: a storage sink or the guard failed (500).
 */
export type UploadProblemCode =
  | "malicious"
  | "suspicious"
  | "not-inspectable"
  | "type-not-allowed"
  | "file-too-large"
  | "request-too-large"
  | "too-many-files"
  | "too-many-fields"
  | "too-many-parts"
  | "field-too-large"
  | "malformed-multipart"
  | "upload-aborted"
  | "scanner-unavailable"
  | "scanner-overloaded"
  | "scan-timeout"
  | "storage-failed"
  | "internal-error";

/** The HTTP status each code answers with. */
export const problemStatuses: Readonly<Record<UploadProblemCode, number>> = {
  malicious: 422,
  suspicious: 422,
  "not-inspectable": 422,
  "type-not-allowed": 415,
  "file-too-large": 413,
  "request-too-large": 413,
  "too-many-files": 413,
  "too-many-fields": 413,
  "too-many-parts": 413,
  "field-too-large": 413,
  "malformed-multipart": 400,
  "upload-aborted": 400,
  "scanner-unavailable": 503,
  "scanner-overloaded": 503,
  "scan-timeout": 504,
  "storage-failed": 500,
  "internal-error": 500,
};

/** The public title of each code: what the client may read (never an internal message). */
export const problemTitles: Readonly<Record<UploadProblemCode, string>> = {
  malicious: "The upload contains malware",
  suspicious: "The upload looks suspicious",
  "not-inspectable": "The upload could not be inspected",
  "type-not-allowed": "This type of file is not allowed",
  "file-too-large": "A file is larger than allowed",
  "request-too-large": "The upload is larger than allowed",
  "too-many-files": "The upload has too many files",
  "too-many-fields": "The upload has too many fields",
  "too-many-parts": "The upload has too many parts",
  "field-too-large": "A field is larger than allowed",
  "malformed-multipart": "The upload is not a valid multipart/form-data body",
  "upload-aborted": "The upload ended before it was complete",
  "scanner-unavailable": "Uploads cannot be checked right now",
  "scanner-overloaded": "Uploads cannot be checked right now",
  "scan-timeout": "The upload could not be checked in time",
  "storage-failed": "The upload could not be stored",
  "internal-error": "The upload could not be processed",
};

/** One file in a problem's `files`: what the client may know about it. */
export interface ProblemFile {
  /** The form field it came in. */
  field: string;
  /** The client's file name, as sent (data, shown back; never a path here). */
  filename: string;
  /** Why it was refused, when it was. */
  code?: UploadProblemCode | undefined;
}

/**
 * An RFC 9457 problem (`application/problem+json`) answered when an upload is refused: the
 * same body in every adapter. `type` is a stable URN per code; `detail` is public text only.
 */
export interface UploadProblem {
  type: `urn:engine:upload:${UploadProblemCode}`;
  title: string;
  status: number;
  code: UploadProblemCode;
  detail: string;
  /** Seconds to wait before retrying (503 only; also sent as the `Retry-After` header). */
  retryAfter?: number | undefined;
  /** The files of the request and what became of each (refused ones carry a code). */
  files?: ProblemFile[] | undefined;
}

/** The problem of `code`, with public `detail` (the title when none is given). */
export function problemOf(
  code: UploadProblemCode,
  options: { detail?: string; retryAfterSeconds?: number; files?: ProblemFile[] } = {},
): UploadProblem {
  const status = problemStatuses[code];
  return {
    type: `urn:engine:upload:${code}`,
    title: problemTitles[code],
    status,
    code,
    detail: options.detail ?? problemTitles[code],
    ...(status === 503 ? { retryAfter: options.retryAfterSeconds ?? 30 } : {}),
    ...(options.files && options.files.length > 0 ? { files: options.files } : {}),
  };
}

/** The media type of a problem body. */
export const problemContentType = "application/problem+json";

/** The headers a refusal answers with (`Content-Type`, and `Retry-After` on 503). */
export function problemHeaders(problem: UploadProblem): Record<string, string> {
  return {
    "content-type": problemContentType,
    "cache-control": "no-store",
    ...(problem.retryAfter !== undefined ? { "retry-after": String(problem.retryAfter) } : {}),
  };
}
