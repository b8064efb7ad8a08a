import type { FastifyReply } from "fastify";

/** Public error body: a code and a short reason, never a path, an address or a stack. */
export function publicBody(code: string, message: string) {
  return { status: "ERROR", code, error: message };
}

/**
 * Refuses a request whose body was not read (or not all of it): answers `status` with
 * {@link publicBody} and `connection: close`, so the rest of the body is never waited for.
 */
export function refuseAndClose(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).header("connection", "close").send(publicBody(code, message));
}
