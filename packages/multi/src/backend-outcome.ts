import type { EngineError, ScanResult } from "@engine/core";

/** What one backend of a multi-engine did with one artifact. */
export type BackendOutcome =
  | {
      /** The backend's name. */
      name: string;
      status: "answered";
      /** Its (validated) answer. */
      result: ScanResult;
      /** Wall time, in milliseconds. */
      durationMs: number;
    }
  | {
      name: string;
      status: "failed";
      /** Why it gave no answer (timeout, unavailable, invalid result, ...). */
      error: EngineError;
      durationMs: number;
    };

/** The outcomes of backends that answered. */
export function answered(
  outcomes: readonly BackendOutcome[],
): Array<Extract<BackendOutcome, { status: "answered" }>> {
  return outcomes.filter(
    (outcome): outcome is Extract<BackendOutcome, { status: "answered" }> =>
      outcome.status === "answered",
  );
}

/** The outcomes of backends that failed. */
export function failed(
  outcomes: readonly BackendOutcome[],
): Array<Extract<BackendOutcome, { status: "failed" }>> {
  return outcomes.filter(
    (outcome): outcome is Extract<BackendOutcome, { status: "failed" }> =>
      outcome.status === "failed",
  );
}
