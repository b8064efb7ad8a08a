import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { request } from "undici";

/**
 * POSTs an answer to the bounty's `response_url`, retrying with exponential backoff until it is
 * accepted or the expiration passes. The same body and `Idempotency-Key` go with every try, so
 * a marketplace that got a retry twice can tell. Resolves true when accepted in time.
 */
export async function deliverResponse(options: {
  url: string;
  body: string;
  idempotencyKey: string;
  expiresAt: number;
  logger: Logger;
}): Promise<boolean> {
  let delay = 100;
  for (let attempt = 1; Date.now() < options.expiresAt; attempt += 1) {
    const remaining = options.expiresAt - Date.now();
    try {
      const response = await request(options.url, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": options.idempotencyKey },
        body: options.body,
        signal: AbortSignal.timeout(Math.max(100, Math.min(remaining, 5_000))),
      });
      await response.body.dump();
      if (response.statusCode >= 200 && response.statusCode < 300) return true;
      const retryable =
        response.statusCode >= 500 || response.statusCode === 408 || response.statusCode === 429;
      options.logger.warn(
        { status: response.statusCode, attempt },
        "response_url refused the answer",
      );
      if (!retryable) return false;
    } catch (error) {
      options.logger.warn({ err: error, attempt }, "delivering the answer failed");
    }
    const wait = Math.min(delay, options.expiresAt - Date.now() - 50);
    if (wait <= 0) break;
    await sleep(wait);
    delay = Math.min(delay * 2, 2_000);
  }
  return false;
}
