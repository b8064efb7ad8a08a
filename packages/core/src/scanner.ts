import { z } from "zod";
import type { Artifact } from "./artifact.js";
import type { ScanResult } from "./scan-result.js";

/** Per-scan options every scanner accepts. */
export interface ScanOptions {
  /** Stops the scan; it then rejects with `ScanAbortedError` (or the signal's engine error). */
  signal?: AbortSignal | undefined;
  /**
   * Absolute deadline in epoch milliseconds (`Date.now() + 2000`), not a duration, so it can
   * be handed down unchanged through a multi-engine. Past it the scan rejects with
   * `ScanTimeoutError`. Default: none.
   */
  deadline?: number | undefined;
}

/** Validates {@link ScanOptions} at the scanner boundary. */
export const scanOptionsSchema = z
  .strictObject({
    signal: z.instanceof(AbortSignal, { message: "signal must be an AbortSignal" }).optional(),
    deadline: z
      .number({
        message: "deadline must be a number of epoch milliseconds, e.g. Date.now() + 2000",
      })
      .finite()
      .optional(),
  })
  .optional();

/**
 * The scanner contract. A scanner answers with a {@link ScanResult}, or throws an engine
 * error; it never answers `benign` for an artifact it could not inspect.
 *
 * - `scan` may be called concurrently; each call gets its own answer.
 * - `setup` and `close` are idempotent and may be called repeatedly and in any order;
 *   `scan` sets up lazily, and a scan after `close` sets up again.
 * - `Symbol.asyncDispose` closes, so `await using scanner = createXScanner()` works.
 *
 * The easy way to get all of this right is `defineScanner`.
 */
export interface Scanner extends AsyncDisposable {
  /** Short stable name (`"clamav"`, `"yara"`), used in metadata, logs and policies. */
  readonly name: string;
  /** Scans one artifact. */
  scan(artifact: Artifact, options?: ScanOptions): Promise<ScanResult>;
  /** Connects, loads rules, starts workers. Idempotent. */
  setup?(): Promise<void>;
  /** Releases everything `setup` acquired. Idempotent. */
  close?(): Promise<void>;
  /**
   * The version of the signatures or rules answering now (a database version, a hash of the
   * rules), when the scanner knows it; it changes as soon as they change. Result caches key
   * on it, so that no answer from old signatures is served after an update.
   */
  readonly signaturesVersion?: string | undefined;
}
