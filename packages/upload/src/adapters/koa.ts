import type { Context, Middleware, Next } from "koa";
import { isMultipartFormData } from "../multipart-request.js";
import type { UploadOutcome } from "../outcome.js";
import { refusalResponse } from "../refusal-response.js";
import { createUploadGuard, type UploadGuard } from "../upload-guard.js";
import type { UploadGuardOptions } from "../upload-options.js";
import { guardNodeRequest } from "./node-http.js";

/** A Koa middleware (Koa 2 and 3), with the guard it runs. */
export type KoaUploadGuard = Middleware & { readonly guard: UploadGuard };

/**
 * Koa middleware that scans `multipart/form-data` uploads as they stream in. An accepted
 * request goes on with `ctx.request.body` (fields), `ctx.request.files` (each file, `stored`
 * where kept) and `ctx.state.upload` (the outcome); a refused one is answered here with the
 * problem+json contract every adapter shares, and nothing is kept. Other content types pass
 * through untouched.
 *
 * @example
 * router.post("/upload", koaUploadGuard({ scanner, storage: diskStorage({ directory: "uploads" }) }),
 *   (ctx) => { ctx.body = { kept: ctx.request.files.map((file) => file.id) }; });
 */
export function koaUploadGuard(options: UploadGuardOptions): KoaUploadGuard {
  const guard = createUploadGuard(options);
  const middleware = async (ctx: Context, next: Next) => {
    if (!isMultipartFormData(ctx.req.headers["content-type"])) return next();
    const outcome: UploadOutcome = await guardNodeRequest(guard, ctx.req, ctx.res);
    if (!outcome.ok) {
      const { status, headers, body } = refusalResponse(outcome);
      ctx.status = status;
      ctx.set(headers); // the content type first: Koa keeps it when the body is set
      ctx.body = body;
      return;
    }
    Object.assign(ctx.request, { body: outcome.fields, files: outcome.files });
    ctx.state.upload = outcome;
    await next();
  };
  return Object.assign(middleware, { guard });
}

export type { UploadGuardOptions } from "../upload-options.js";
