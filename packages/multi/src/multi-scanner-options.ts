import { z } from "zod";
import type { VerdictPolicy } from "./verdict-policy.js";

/** Options of `createMultiScanner`. */
export const multiScannerOptionsSchema = z
  .strictObject({
    /** Name of the multi-engine. Default `"multi"`. */
    name: z.string().min(1).default("multi"),
    /**
     * How backend answers become one verdict: `"any"` (default, the tutorial's rule),
     * `"majority"`, or a policy function (`quorum(2)`, `weighted({...}, 2)`, your own).
     */
    policy: z
      .union([
        z.enum(["any", "majority"]),
        z.custom<VerdictPolicy>((value) => typeof value === "function"),
      ])
      .default("any"),
    /**
     * Each backend's own time budget, in ms, inside the caller's deadline: one number for all
     * or `{ name: ms }`. It bounds the backend's setup too: a scan waits for a backend's setup
     * and scan together at most this long, and `setup()` waits for each backend's setup at most
     * this long. A backend past its budget counts as failed (`SCAN_TIMEOUT`; "did not finish
     * setting up" when its setup had not finished). Default: none (a scan still gives each
     * backend at most the caller's deadline less `deadlineMarginMs`; `setup()` then waits as
     * long as the backend's own setup takes).
     */
    backendTimeoutMs: z
      .union([z.number().int().positive(), z.record(z.string(), z.number().int().positive())])
      .optional(),
    /** Time kept before the caller's deadline to combine the answers, in ms. Default 20. */
    deadlineMarginMs: z.number().int().nonnegative().default(20),
    /**
     * A stream artifact whose declared size is at most this many bytes is read into memory once;
     * larger or unsized streams are spooled to a temporary file. Default 8 MiB.
     */
    memoryLimitBytes: z
      .number()
      .int()
      .nonnegative()
      .default(8 * 1024 * 1024),
    /** Where spooled streams go. Default: the OS temp directory. */
    temporaryDirectory: z.string().min(1).optional(),
    /**
     * Opt out of the inconclusive rule. By default (false) the combined verdict is `benign`
     * only when every backend looked and answered: a backend that failed, or answered
     * `unknown` because it could not look inside (an encrypted archive, a limit hit), turns a
     * `benign` into `unknown`. With true, an inconclusive backend is ignored when the others
     * say benign (a failed backend still is not). Only for backends whose `unknown` means "no
     * opinion" rather than "could not see".
     */
    benignWhenInconclusive: z.boolean().default(false),
    /**
     * Called with each backend's failure (its full error, with paths and causes) for your logs;
     * the combined answer only carries the error's code and short public reason. Default: none.
     */
    onBackendError: z
      .custom<(backend: string, error: import("@engine/core").EngineError) => void>(
        (value) => typeof value === "function",
      )
      .optional(),
  })
  .default({
    name: "multi",
    policy: "any",
    deadlineMarginMs: 20,
    memoryLimitBytes: 8 * 1024 * 1024,
    benignWhenInconclusive: false,
  });

/** Options of `createMultiScanner`; see {@link multiScannerOptionsSchema}. */
export type MultiScannerOptions = z.input<typeof multiScannerOptionsSchema>;
