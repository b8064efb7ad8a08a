/**
 * `text` with the credentials of every URL in it replaced by `***` (`redis://:secret@host` ->
 * `redis://***@host`): for error messages, logs and configuration errors.
 */
export function redactUrls(text: string): string {
  // Up to the last "@" of the authority: a password may contain "@" itself.
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s]*@/gi, "$1***@");
}
