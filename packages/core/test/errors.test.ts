import { describe, expect, it } from "vitest";
import {
  ArtifactTooLargeError,
  BackendUnavailableError,
  EncryptedArtifactError,
  EngineError,
  type EngineErrorCode,
  errorVerdictComments,
  ProtocolError,
  publicError,
  ScanAbortedError,
  ScanTimeoutError,
  scanResultForError,
  scanResultSchema,
} from "../src/index.js";

describe("EngineError", () => {
  it("carries code, hint, scanner and cause, and names its class", () => {
    const cause = new Error("ECONNREFUSED");
    const error = new BackendUnavailableError({
      message: "@engine/clamav: clamd is not reachable",
      hint: "start clamd",
      cause,
      scanner: "clamav",
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("BackendUnavailableError");
    expect(error.code).toBe("BACKEND_UNAVAILABLE");
    expect(error.hint).toBe("start clamd");
    expect(error.scanner).toBe("clamav");
    expect(error.cause).toBe(cause);
    expect(error.toJSON()).toEqual({
      name: "BackendUnavailableError",
      code: "BACKEND_UNAVAILABLE",
      message: "@engine/clamav: clamd is not reachable",
      hint: "start clamd",
      scanner: "clamav",
    });
  });

  it("isInstance tells subclasses apart and EngineError accepts them all", () => {
    const timeout = new ScanTimeoutError({ message: "late" });
    expect(EngineError.isInstance(timeout)).toBe(true);
    expect(ScanTimeoutError.isInstance(timeout)).toBe(true);
    expect(ScanAbortedError.isInstance(timeout)).toBe(false);
    expect(EngineError.isInstance(new Error("plain"))).toBe(false);
    expect(EngineError.isInstance(null)).toBe(false);
    expect(EngineError.isInstance("BACKEND_UNAVAILABLE")).toBe(false);
  });

  it("isInstance recognises errors from another copy of the package (Symbol.for marker)", () => {
    const foreign = Object.assign(new Error("from a duplicate install"), {
      code: "PROTOCOL_ERROR",
      [Symbol.for("@engine/core/error")]: true,
    });
    expect(foreign instanceof EngineError).toBe(false);
    expect(EngineError.isInstance(foreign)).toBe(true);
    expect(ProtocolError.isInstance(foreign)).toBe(true);
    expect(BackendUnavailableError.isInstance(foreign)).toBe(false);
  });
});

describe("scanResultForError", () => {
  it.each([
    [new EncryptedArtifactError({ message: "zip is encrypted" }), "SKIPPED:ENCRYPTED"],
    [new ArtifactTooLargeError({ message: "too big" }), "SKIPPED:TOO_LARGE"],
    [new ScanTimeoutError({ message: "late" }), "ERROR:TIMEOUT"],
    [new BackendUnavailableError({ message: "down" }), "ERROR:BACKEND_UNAVAILABLE"],
    [new TypeError("a bug"), "ERROR:INTERNAL"],
    ["a thrown string", "ERROR:INTERNAL"],
  ])("maps %s to unknown with %s, never benign", (error, comment) => {
    const result = scanResultForError(error, { scanner: { vendor_version: "1.4.6" } });
    expect(scanResultSchema.parse(result)).toEqual(result);
    expect(result.verdict).toBe("unknown");
    expect(result.confidence).toBe(0);
    expect(result.metadata.comments?.[0]).toBe(comment);
    expect(result.metadata.scanner).toEqual({ vendor_version: "1.4.6" });
  });

  it("has a comment for every code", () => {
    const codes: EngineErrorCode[] = [
      "ENGINE_ERROR",
      "INVALID_OPTIONS",
      "BACKEND_UNAVAILABLE",
      "SCAN_TIMEOUT",
      "SCAN_ABORTED",
      "ARTIFACT_TOO_LARGE",
      "ARTIFACT_UNAVAILABLE",
      "PROTOCOL_ERROR",
      "INVALID_RESULT",
      "UNSUPPORTED_ARTIFACT",
      "ENCRYPTED_ARTIFACT",
      "CORRUPT_ARTIFACT",
    ];
    for (const code of codes)
      expect(errorVerdictComments[code]).toMatch(/^(ERROR|SKIPPED):[A-Z_]+$/);
  });
});

describe("public reasons", () => {
  it("answers carry the code and a short public reason, never the detailed message", () => {
    const error = new BackendUnavailableError({
      message: "@engine/clamav: cannot connect to /tmp/engine-clamd-x/clamd.sock: ECONNREFUSED",
    });
    const result = scanResultForError(error);
    expect(result.metadata.comments).toEqual([
      "ERROR:BACKEND_UNAVAILABLE",
      "a scanning backend is unavailable",
    ]);
    expect(JSON.stringify(result)).not.toMatch(/tmp|sock|ECONNREFUSED/);
    expect(error.toPublicJSON()).toEqual({
      code: "BACKEND_UNAVAILABLE",
      message: "a scanning backend is unavailable",
    });
    const specific = new ArtifactTooLargeError({
      message: "@engine/x: /var/spool/a.bin is 3 GB",
      publicMessage: "the artifact is larger than 1 MiB",
    });
    expect(scanResultForError(specific).metadata.comments?.[1]).toBe(
      "the artifact is larger than 1 MiB",
    );
    expect(publicError(new TypeError("Cannot read properties of undefined (reading 'x')"))).toEqual(
      { code: "ENGINE_ERROR", message: "internal error" },
    );
  });
});
