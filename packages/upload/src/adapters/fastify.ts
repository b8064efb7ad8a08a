import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { isMultipartFormData } from "../multipart-request.js";
import type { UploadOutcome } from "../outcome.js";
import { refusalResponse } from "../refusal-response.js";
import { createUploadGuard, type UploadGuard } from "../upload-guard.js";
import type { UploadGuardOptions } from "../upload-options.js";
import { guardNodeRequest } from "./node-http.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The upload guard's outcome of an accepted multipart request (`null` for others). */
    upload: Extract<UploadOutcome, { ok: true }> | null;
  }
}

/** A Fastify plugin (register it in the scope whose routes take uploads), with its guard. */
export interface FastifyUploadGuard {
  (instance: FastifyInstance, options: unknown, done: (error?: Error) => void): void;
  readonly guard: UploadGuard;
}

/**
 * A Fastify plugin that scans `multipart/form-data` uploads as they stream in, for the routes
 * of the scope it is registered in: it takes over the multipart content type (do not register
 * `@fastify/multipart` in the same scope), and in `preValidation` reads each upload through
 * the guard. An accepted request reaches the handler with `request.body` (fields) and
 * `request.upload` (files, `stored` where kept); a refused one is answered with the same
 * problem+json contract as every adapter, and nothing is kept.
 *
 * @example
 * await app.register(fastifyUploadGuard({ scanner, storage: diskStorage({ directory: "uploads" }) }));
 * app.post("/upload", async (request) => ({ stored: request.upload?.files.map((file) => file.id) }));
 */
export function fastifyUploadGuard(options: UploadGuardOptions): FastifyUploadGuard {
  const guard = createUploadGuard(options);
  const plugin = (instance: FastifyInstance, _options: unknown, done: (error?: Error) => void) => {
    instance.decorateRequest("upload", null);
    // The body stays unread here: the guard reads it as a stream in preValidation.
    instance.addContentTypeParser("multipart/form-data", (_request, _payload, parsed) =>
      parsed(null, undefined),
    );
    instance.addHook("preValidation", async (request: FastifyRequest, reply: FastifyReply) => {
      if (!isMultipartFormData(request.headers["content-type"])) return;
      const outcome = await guardNodeRequest(guard, request.raw, reply.raw);
      if (outcome.ok) {
        request.upload = outcome;
        request.body = outcome.fields;
        return;
      }
      const { status, headers, body } = refusalResponse(outcome);
      return reply.code(status).headers(headers).send(body);
    });
    done();
  };
  // Hooks and the parser apply to the scope it is registered in (fastify-plugin's marker).
  Object.assign(plugin, { [Symbol.for("skip-override")]: true, guard });
  return plugin as FastifyUploadGuard;
}

export type { UploadGuardOptions } from "../upload-options.js";
