import type { FastifyReply, FastifyRequest } from "fastify";
import { redactUrls } from "../operations/redact.js";
import { publicBody } from "./public-body.js";

/** An error Fastify hands its error handler: a parser's or a plugin's carries a status and a code. */
type RequestError = Error & { statusCode?: number; code?: string };

/** The public reason of an error status. */
function publicReason(status: number): string {
  if (status === 413) return "the body is too large";
  if (status === 415) return "unsupported content type";
  return status < 500 ? "bad request" : "internal error";
}

/**
 * The server's error handler: a 4xx from a parser or a limit answers its status with a public
 * code (logged at info), anything else 500 (logged at error, URLs redacted). A 413 closes the
 * connection: the refused body may still be on its way.
 */
export function requestErrorHandler(
  error: RequestError,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const status =
    typeof error.statusCode === "number" && error.statusCode >= 400 ? error.statusCode : 500;
  if (status >= 500)
    request.log.error({ err: error, message: redactUrls(error.message) }, "request failed");
  else request.log.info({ code: error.code, status }, "request refused");
  // A refused body may still be on its way: close instead of reading it.
  if (status === 413) reply.header("connection", "close");
  const code = status === 413 ? "BODY_TOO_LARGE" : status < 500 ? "BAD_REQUEST" : "ENGINE_ERROR";
  return reply.code(status).send(publicBody(code, publicReason(status)));
}
