import type { UploadOutcome } from "../outcome.js";
import { refusalResponse } from "../refusal-response.js";
import type { UploadGuard } from "../upload-guard.js";

/** A web `Request`'s headers as the guard reads them (names in lowercase). */
function headerRecord(headers: Headers): Record<string, string> {
  const record: Record<string, string> = {};
  headers.forEach((value, name) => {
    record[name.toLowerCase()] = value;
  });
  return record;
}

/** Runs the guard on a web `Request`: its body read as a stream, its `signal` honoured. */
export function webRequestOutcome(guard: UploadGuard, request: Request): Promise<UploadOutcome> {
  return guard.handle({
    headers: headerRecord(request.headers),
    body:
      request.body ?? new ReadableStream<Uint8Array>({ start: (controller) => controller.close() }),
    signal: request.signal,
  });
}

/** The refusal as a web `Response` (the problem+json contract every adapter shares). */
export function webRefusal(outcome: Extract<UploadOutcome, { ok: false }>): Response {
  const { status, headers, body } = refusalResponse(outcome);
  return new Response(body, { status, headers });
}
