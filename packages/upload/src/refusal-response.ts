import type { UploadOutcome } from "./outcome.js";
import { problemHeaders } from "./problems.js";

/**
 * The refusal's status, headers and JSON body (RFC 9457), as every adapter answers it;
 * `Connection: close` when the body was not read to its end.
 */
export function refusalResponse(outcome: Extract<UploadOutcome, { ok: false }>): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  return {
    status: outcome.problem.status,
    headers: {
      ...problemHeaders(outcome.problem),
      ...(outcome.bodyUnread ? { connection: "close" } : {}),
    },
    body: JSON.stringify(outcome.problem),
  };
}
