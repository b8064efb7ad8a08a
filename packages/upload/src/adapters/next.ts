import { isMultipartFormData } from "../multipart-request.js";
import type { UploadOutcome } from "../outcome.js";
import { problemOf } from "../problems.js";
import { createUploadGuard, type UploadGuard } from "../upload-guard.js";
import type { UploadGuardOptions } from "../upload-options.js";
import { webRefusal, webRequestOutcome } from "./web-request.js";

/** An accepted upload, as the route handler receives it. */
export type AcceptedUpload = Extract<UploadOutcome, { ok: true }>;

/** A route handler behind the guard: the request, the accepted upload, Next's context. */
export type UploadRouteHandler<Context> = (
  request: Request,
  upload: AcceptedUpload,
  context: Context,
) => Response | Promise<Response>;

/** Wraps route handlers (`POST`) with the guard; `guard` is the guard they share. */
export interface NextUploadGuard {
  <Context>(
    handler: UploadRouteHandler<Context>,
  ): (request: Request, context: Context) => Promise<Response>;
  readonly guard: UploadGuard;
}

/**
 * For Next.js App Router route handlers: wraps a handler so that its request's
 * `multipart/form-data` body is read as a stream through the guard (never `formData()`, which
 * holds every file in memory); the handler runs only for an accepted upload, which it receives
 * with its fields and files. A refused upload, or a request that is not `multipart/form-data`
 * (400), is answered with the problem+json contract every adapter shares, nothing kept. The
 * request's `signal` (the client going away) aborts the scan.
 *
 * In `next.config`, list the engine's packages in `serverExternalPackages` (they load native
 * add-ons and worker threads, which bundling breaks).
 *
 * @example
 * // app/api/upload/route.js
 * const withUploadGuard = nextUploadGuard({ scanner, storage: diskStorage({ directory: "uploads" }) });
 * export const POST = withUploadGuard(async (request, upload) =>
 *   Response.json({ kept: upload.files.map((file) => file.id) }));
 */
export function nextUploadGuard(options: UploadGuardOptions): NextUploadGuard {
  const guard = createUploadGuard(options);
  const wrap =
    <Context>(handler: UploadRouteHandler<Context>) =>
    async (request: Request, context: Context): Promise<Response> => {
      if (!isMultipartFormData(request.headers.get("content-type") ?? undefined))
        return webRefusal({
          ok: false,
          problem: problemOf("malformed-multipart", {
            detail: "Send the upload as multipart/form-data.",
          }),
          fields: {},
          files: [],
          bodyUnread: true,
        });
      const outcome = await webRequestOutcome(guard, request);
      if (!outcome.ok) return webRefusal(outcome);
      return handler(request, outcome, context);
    };
  return Object.assign(wrap, { guard }) as NextUploadGuard;
}

export type { UploadGuardOptions } from "../upload-options.js";
