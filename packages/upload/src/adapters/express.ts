import type { IncomingMessage, ServerResponse } from "node:http";
import { isMultipartFormData } from "../multipart-request.js";
import type { UploadedFile, UploadFields, UploadOutcome } from "../outcome.js";
import { createUploadGuard, type UploadGuard } from "../upload-guard.js";
import type { UploadGuardOptions } from "../upload-options.js";
import { guardNodeRequest, sendRefusal } from "./node-http.js";

/** What the middleware puts on an accepted request. */
export interface GuardedRequestFields {
  /** The form's text fields (as `express.urlencoded` would put them). */
  body: UploadFields;
  /** Every file and what became of it (accepted ones carry `stored`). */
  files: UploadedFile[];
  /** The whole outcome. */
  upload: Extract<UploadOutcome, { ok: true }>;
}

type Next = (error?: unknown) => void;

/** An Express middleware (Express 4 and 5), with the guard it runs. */
export interface ExpressUploadGuard {
  (request: IncomingMessage, response: ServerResponse, next: Next): void;
  readonly guard: UploadGuard;
}

/**
 * Express middleware that scans `multipart/form-data` uploads as they stream in. An accepted
 * request goes on with `req.body` (fields), `req.files` (each file, `stored` where it was
 * kept) and `req.upload`; a refused one is answered here (RFC 9457 problem+json: 422 malware
 * or not inspectable, 415 type, 413 limits, 400 malformed, 503 scanner down, 504 timeout) and
 * nothing is kept. Other content types pass through untouched.
 *
 * @example
 * app.post("/upload", expressUploadGuard({ scanner, storage: diskStorage({ directory: "uploads" }) }),
 *   (req, res) => res.json({ stored: req.files.map((file) => file.id) }));
 */
export function expressUploadGuard(options: UploadGuardOptions): ExpressUploadGuard {
  const guard = createUploadGuard(options);
  const middleware = (request: IncomingMessage, response: ServerResponse, next: Next) => {
    if (!isMultipartFormData(request.headers["content-type"])) return next();
    guardNodeRequest(guard, request, response).then((outcome) => {
      if (!outcome.ok) return sendRefusal(response, outcome);
      Object.assign(request, { body: outcome.fields, files: outcome.files, upload: outcome });
      next();
    }, next);
  };
  return Object.assign(middleware, { guard });
}

export type { UploadGuardOptions } from "../upload-options.js";
export { type MulterFile, type ScanMulterFilesOptions, scanMulterFiles } from "./multer-files.js";
