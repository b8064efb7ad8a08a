import { availableParallelism } from "node:os";
import { z } from "zod";
import { maxRuleSourceStringBytes } from "./rule-source-limits.js";

const externalValue = z.union([z.string(), z.number(), z.boolean()]);
const byteLimit = (maximum: number) => z.number().int().positive().max(maximum);

/** `RuleSourceLimits` as an option: each entry optional, unset ones keep their default. */
export const ruleSourceLimitsSchema = z.strictObject({
  /** Levels of `include` below a root file. Default 16; at most 256. */
  maxIncludeDepth: z.number().int().min(0).max(256).optional(),
  /** Files inlined into one root file. Default 1,024; at most 1,000,000. */
  maxIncludedFiles: z.number().int().min(0).max(1_000_000).optional(),
  /** Bytes of one rule file. Default 32 MiB; at most 512 MiB. */
  maxFileBytes: byteLimit(maxRuleSourceStringBytes).optional(),
  /** Bytes of one root file with its includes. Default 64 MiB; at most 512 MiB. */
  maxSourceBytes: byteLimit(maxRuleSourceStringBytes).optional(),
  /** Bytes read in one load (setup or reload). Default 256 MiB; at most 64 GiB. */
  maxTotalBytes: byteLimit(64 * 1024 * 1024 * 1024).optional(),
});

/** Options of `createYaraScanner`. */
export const yaraScannerOptionsSchema = z.strictObject({
  /** Scanner name. Default `"yara"`. */
  name: z.string().min(1).default("yara"),
  /** A directory of rules, read recursively (`.yar`, `.yara`), like `RULES_DIR`. */
  rulesDir: z.string().min(1).optional(),
  /** Rule files. */
  ruleFiles: z.array(z.string().min(1)).optional(),
  /** Rule sources: one string, a list, or `{ namespace: source }`. */
  rules: z.union([z.string(), z.array(z.string()), z.record(z.string(), z.string())]).optional(),
  /**
   * `"wasm"` (default): YARA-X as WebAssembly, works everywhere. `"native"`: a native engine,
   * loaded lazily (see the README). `"auto"`: native when it loads, else wasm.
   */
  engine: z.enum(["wasm", "native", "auto"]).default("wasm"),
  /**
   * External variables and their defaults. `filename`, `filepath`, `extension` and `filetype`
   * are always declared (default `""`) and set per scan from the artifact (`filetype` from
   * its first 4100 bytes, by their magic numbers: `application/pdf`, `""` when unknown).
   */
  externals: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an external's name is an identifier"),
      externalValue,
    )
    .default({}),
  /**
   * Bounds on reading rule files and inlining their `include`s (depth, files, bytes per file,
   * per root file and per load); see `RuleSourceLimits` for the defaults. A file over a bound
   * is a diagnostic and is skipped like a file that does not compile.
   */
  ruleSourceLimits: ruleSourceLimitsSchema.optional(),
  /** `"skip"` (default): a file that does not compile is reported and left out; `"fail"`: setup fails. */
  onCompileError: z.enum(["skip", "fail"]).default("skip"),
  /**
   * Worker threads (wasm), or native scans at once on the libuv thread pool (native: keep
   * UV_THREADPOOL_SIZE above it). Default: the number of cores.
   */
  workers: z
    .number()
    .int()
    .min(1)
    .max(64)
    .default(() => availableParallelism()),
  /**
   * Scans that may wait for a worker (or, natively, for a thread-pool slot); the next one fails
   * at once with `OverloadedError` instead of queueing without bound. Default 256.
   */
  maxQueuedScans: z.number().int().min(0).max(1_000_000).default(256),
  /** Largest artifact scanned, in bytes (YARA-X scans whole buffers). Default 256 MiB. */
  maxScanBytes: z
    .number()
    .int()
    .positive()
    .default(256 * 1024 * 1024),
  /** `score` meta (0-100) at or above this is malicious, below suspicious. Default 70. */
  maliciousScore: z.number().min(0).max(100).default(70),
  /** Tags that make a match suspicious. Default `["suspicious", "hunting", "heuristic"]`. */
  suspiciousTags: z.array(z.string()).default(["suspicious", "hunting", "heuristic"]),
  /** Confidence of a malicious match without confidence/score meta. Default 1. */
  maliciousConfidence: z.number().min(0).max(1).default(1),
  /** Confidence of a suspicious match without confidence/score meta. Default 0.5. */
  suspiciousConfidence: z.number().min(0).max(1).default(0.5),
  /** Called once per (re)load with the diagnostics; default: one `console.warn` summary. */
  onDiagnostics: z
    .custom<(diagnostics: import("./rule-diagnostics.js").RuleDiagnostic[]) => void>(
      (value) => typeof value === "function",
    )
    .optional(),
});

/** Options of `createYaraScanner`; see {@link yaraScannerOptionsSchema}. */
export type YaraScannerOptions = z.input<typeof yaraScannerOptionsSchema>;
