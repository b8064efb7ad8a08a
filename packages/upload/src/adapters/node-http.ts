import type { IncomingMessage, ServerResponse } from "node:http";
import type { UploadOutcome } from "../outcome.js";
import { refusalResponse } from "../refusal-response.js";
import type { UploadGuard } from "../upload-guard.js";

/**
 * An AbortSignal that fires when the client goes away before the response is sent (its
 * socket closed mid-upload). Stop listening with `dispose` once the request is handled.
 */
export function clientGoneSignal(
  request: IncomingMessage,
  response: ServerResponse,
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onClose = () => {
    if (!response.writableFinished) controller.abort(new Error("the client closed the connection"));
  };
  const onAborted = () => controller.abort(new Error("the client aborted the request"));
  request.once("aborted", onAborted);
  response.once("close", onClose);
  return {
    signal: controller.signal,
    dispose() {
      request.off("aborted", onAborted);
      response.off("close", onClose);
    },
  };
}

/** Runs the guard on a Node request (its body read as a stream). */
export async function guardNodeRequest(
  guard: UploadGuard,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<UploadOutcome> {
  const gone = clientGoneSignal(request, response);
  try {
    return await guard.handle({ headers: request.headers, body: request, signal: gone.signal });
  } finally {
    gone.dispose();
  }
}

/** Answers a refusal on a Node response (unless the client is gone or headers were sent). */
export function sendRefusal(
  response: ServerResponse,
  outcome: Extract<UploadOutcome, { ok: false }>,
): void {
  if (response.headersSent || response.destroyed) return;
  const { status, headers, body } = refusalResponse(outcome);
  response.writeHead(status, headers);
  response.end(body);
}
