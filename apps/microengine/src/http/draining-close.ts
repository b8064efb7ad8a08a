import { closeWithin } from "../operations/bounded-close.js";

/** Longest a shutdown lets HTTP connections finish once the intake is drained, in ms. */
export const connectionGraceMs = 10_000;

/**
 * Closes an HTTP app so that no client can hold a shutdown: it stops listening at once (new
 * requests on kept connections get 503), waits for `drain` (answers in flight go out
 * meanwhile: never after a client's half-sent request), then gives the connections still open
 * {@link connectionGraceMs} to finish and closes the rest. Node stops its header and request
 * timeouts once a server closes, so without the last step one socket trickling a header line
 * would hold the process for ever.
 */
export async function closeHttpDraining(
  app: { close(): PromiseLike<unknown>; server: { closeAllConnections(): void } },
  drain: () => Promise<unknown>,
  graceMs = connectionGraceMs,
): Promise<void> {
  const closing = Promise.resolve(app.close());
  closing.catch(() => {}); // awaited below, after the drain; never an unhandled rejection
  await drain();
  await closeWithin(closing, graceMs, () => app.server.closeAllConnections());
  await closing.catch(() => {});
}
