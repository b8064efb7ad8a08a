import { redactUrls } from "./redact.js";

/** The message of anything thrown: an Error's `message`, else its string form. Never throws. */
export function errorMessage(error: unknown): string {
  const message = (error as { message?: unknown } | null | undefined)?.message;
  if (typeof message === "string") return message;
  try {
    return String(error);
  } catch {
    return "(an unprintable error)";
  }
}

/** {@link errorMessage} with credentials in URLs redacted (`redis://***@host`): for logs. */
export function loggableMessage(error: unknown): string {
  return redactUrls(errorMessage(error));
}
