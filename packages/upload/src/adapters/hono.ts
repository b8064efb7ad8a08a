import type { MiddlewareHandler } from "hono";
import { isMultipartFormData } from "../multipart-request.js";
import type { UploadOutcome } from "../outcome.js";
import { createUploadGuard, type UploadGuard } from "../upload-guard.js";
import type { UploadGuardOptions } from "../upload-options.js";
import { webRefusal, webRequestOutcome } from "./web-request.js";

/** The variable the Hono middleware sets on an accepted request (`c.get("upload")`). */
export interface UploadVariables {
  upload: Extract<UploadOutcome, { ok: true }>;
}

/** A Hono middleware, with the guard it runs. */
export type HonoUploadGuard = MiddlewareHandler<{ Variables: UploadVariables }> & {
  readonly guard: UploadGuard;
};

/**
 * Hono middleware that scans `multipart/form-data` uploads, reading the web `Request`'s body
 * as a stream (never `parseBody()` or `formData()`, which hold every file in memory). An
 * accepted request goes on with `c.get("upload")` (fields and files, `stored` where kept); a
 * refused one is answered with the problem+json contract every adapter shares, nothing kept.
 * The request's `signal` (the client going away, where the server wires it) aborts the scan.
 *
 * @example
 * app.post("/upload", honoUploadGuard({ scanner, storage: memoryStorage() }),
 *   (c) => c.json({ kept: c.get("upload").files.map((file) => file.id) }));
 */
export function honoUploadGuard(options: UploadGuardOptions): HonoUploadGuard {
  const guard = createUploadGuard(options);
  const middleware: MiddlewareHandler<{ Variables: UploadVariables }> = async (c, next) => {
    if (!isMultipartFormData(c.req.header("content-type"))) return next();
    const outcome = await webRequestOutcome(guard, c.req.raw);
    if (!outcome.ok) return webRefusal(outcome);
    c.set("upload", outcome);
    await next();
  };
  return Object.assign(middleware, { guard });
}

export type { UploadGuardOptions } from "../upload-options.js";
