import { EngineError, stampScannerName } from "@engine/core";

/**
 * `error` as an engine error naming `scanner`: an engine error keeps its class (stamped with
 * the name when it names no scanner), anything else is wrapped in an `EngineError`.
 */
export function asEngineError(error: unknown, scanner: string): EngineError {
  if (EngineError.isInstance(error)) return stampScannerName(error, scanner);
  return new EngineError({
    message: `@engine/multi: ${scanner} failed: ${(error as Error)?.message ?? String(error)}`,
    cause: error,
    scanner,
  });
}
