import { EngineError, type ScanResult } from "@engine/core";
import type { UploadProblemCode } from "./problems.js";
import type { ResolvedUploadGuardOptions } from "./upload-options.js";

/**
 * What a scanner's error means for an upload: the scanner could not scan now (503), not in
 * time (504), or not this file (422, `not-inspectable`: encrypted, over its limits,
 * unsupported, corrupt). Another engine error is the scanner failing (503); an error that is
 * not an engine error is the guard's own (500). Never a stored file.
 */
export function codeOfScanError(error: unknown): UploadProblemCode {
  if (!EngineError.isInstance(error)) return "internal-error";
  switch (error.code) {
    case "SCAN_TIMEOUT":
      return "scan-timeout";
    case "OVERLOADED":
      return "scanner-overloaded";
    case "SCAN_ABORTED":
      return "upload-aborted";
    case "ARTIFACT_TOO_LARGE":
    case "ENCRYPTED_ARTIFACT":
    case "UNSUPPORTED_ARTIFACT":
    case "CORRUPT_ARTIFACT":
      return "not-inspectable";
    case "ARTIFACT_UNAVAILABLE":
      return "upload-aborted";
    default:
      return "scanner-unavailable";
  }
}

/** Why a verdict refuses a file under the options, or undefined when it keeps it. */
export function codeOfVerdict(
  result: ScanResult,
  options: Pick<ResolvedUploadGuardOptions, "suspicious" | "unknown">,
): UploadProblemCode | undefined {
  switch (result.verdict) {
    case "benign":
      return undefined;
    case "malicious":
      return "malicious";
    case "suspicious":
      return options.suspicious === "accept" ? undefined : "suspicious";
    default:
      return options.unknown === "accept" ? undefined : "not-inspectable";
  }
}

/** Codes decided per file (under `onRefusedFile: "per-file"`); the others end the request. */
export const perFileCodes: ReadonlySet<UploadProblemCode> = new Set([
  "malicious",
  "suspicious",
  "not-inspectable",
  "type-not-allowed",
]);

/** The order refusals are reported in when a request has several: the gravest first. */
const gravity: readonly UploadProblemCode[] = [
  "malicious",
  "suspicious",
  "not-inspectable",
  "type-not-allowed",
];

/** The code a request refused for several files answers with. */
export function gravestCode(codes: readonly UploadProblemCode[]): UploadProblemCode | undefined {
  return [...codes].sort((a, b) => rank(a) - rank(b))[0];
}

const rank = (code: UploadProblemCode) => {
  const index = gravity.indexOf(code);
  return index === -1 ? gravity.length : index;
};
