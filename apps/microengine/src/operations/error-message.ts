import { redactUrls } from "./redact.js";

/** The message of anything thrown: an Error's `message`, else its string form. Never throws. */
export function errorMessage(error: unknown): string {
  try {
    // (a getter may throw, and an object without toString may refuse String())
    const message = (error as { message?: unknown } | null | undefined)?.message;
    return typeof message === "string" ? message : String(error);
  } catch {
    return "(an unprintable error)";
  }
}

/** {@link errorMessage} with credentials in URLs redacted (`redis://***@host`): for logs. */
export function loggableMessage(error: unknown): string {
  return redactUrls(errorMessage(error));
}
