import { createHash } from "node:crypto";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Artifact,
  ArtifactTooLargeError,
  BackendUnavailableError,
  defineScanner,
  InvalidOptionsError,
  parseOptions,
  type Scanner,
  verdictMetadata,
} from "@engine/core";
import { withContentType } from "./content-type.js";
import { verdictFromMatches } from "./match-verdict.js";
import { compileWithNative, loadNativeEngine } from "./native-engine.js";
import { formatDiagnostic, type RuleDiagnostic } from "./rule-diagnostics.js";
import { isDirectory, loadRuleSources } from "./rule-sources.js";
import type { EngineKind, ScanEngine } from "./scan-engine.js";
import { yaraPackageVersion } from "./version.js";
import { compileWithWasm } from "./wasm-engine.js";
import { type YaraScannerOptions, yaraScannerOptionsSchema } from "./yara-scanner-options.js";
import type { PoolStatus } from "./yara-worker-pool.js";
import type { ExternalValue } from "./yara-worker-protocol.js";

/** The rules shipped with this package (an EICAR rule), used when no rules are given. */
export const bundledRulesDirectory: string = fileURLToPath(new URL("../rules/", import.meta.url));

/** External variables every scanner declares and sets per scan from the artifact. */
export const artifactExternals = ["filename", "filepath", "extension", "filetype"] as const;

/** A YARA scanner: the `Scanner` contract plus its rules' state. */
export interface YaraScanner extends Scanner {
  /** Problems found in the rule files at the last successful (re)load; files with errors were skipped. */
  readonly diagnostics: readonly RuleDiagnostic[];
  /** Stable hash of the compiled rule sources (the `signatures_version`), once set up. */
  readonly signaturesVersion: string | undefined;
  /** Number of rule files (namespaces) compiled, once set up. */
  readonly ruleFileCount: number;
  /** The engine in use once set up: `"wasm"` or `"native"` (what `"auto"` chose). */
  readonly engine: EngineKind | undefined;
  /**
   * That engine's own version once set up: the YARA-X package version for `"wasm"`, libyara's
   * for `"native"` (the `vendor_version` of results).
   */
  readonly vendorVersion: string | undefined;
  /**
   * Workers, busy ones, the queue and its bound, and `ready` (false before setup, after close,
   * and while the pool has no worker: replacements are being retried).
   */
  status(): YaraScannerStatus;
  /**
   * Reads and compiles the rules again in the background, then swaps them in atomically;
   * scans keep running on the old rules meanwhile. On failure the old rules stay and the
   * error says why.
   * @param options.onCompileError overrides the scanner's setting for this reload: `"fail"`
   *   keeps every old rule when any new file does not compile (what a hot reload wants),
   *   `"skip"` swaps in the files that compile.
   */
  reload(options?: { onCompileError?: "fail" | "skip" }): Promise<void>;
}

/** {@link YaraScanner.status}: readiness and saturation. */
export interface YaraScannerStatus extends PoolStatus {
  /** True when scans can run now (at least one worker). */
  ready: boolean;
}

interface LoadedRules {
  engine: ScanEngine;
  diagnostics: RuleDiagnostic[];
  signaturesVersion: string;
  fileCount: number;
  /**
   * True when a rule may read the `filetype` external (its word appears in a source): only then
   * is an artifact's head read and typed before the scan (four file operations and `file-type`'s
   * look, gzip inflated, per file: most of the main thread's cost per small file).
   */
  typesContent: boolean;
  inFlight: number;
  retired: boolean;
}

/**
 * The per-scan externals: the name, path and extension as given, and `filetype` from the
 * content ({@link withContentType}), never the declared `mimetype`.
 */
function artifactExternalValues(
  artifact: Artifact,
  filetype: string,
): Record<string, ExternalValue> {
  const filename = artifact.filename ?? "";
  return {
    filename,
    filepath: artifact.path ?? "",
    extension: extname(filename).replace(/^\./, "").toLowerCase(),
    filetype,
  };
}

/**
 * A YARA scanner on YARA-X (WebAssembly). Rules come from `rulesDir` (recursive, like
 * `RULES_DIR`), `ruleFiles` and inline `rules`, or the bundled EICAR rule when none are given.
 * Each file is its own namespace; `include` is resolved relative to the including file;
 * files that do not compile are reported in `diagnostics` and skipped (or fail the setup with
 * `onCompileError: "fail"`); zero usable rules is an error. Scans run in worker threads, and an
 * abort or deadline terminates the worker running the scan.
 *
 * @example
 * await using scanner = createYaraScanner({ rulesDir: "./rules" });
 * const result = await scanner.scan(artifactFromFile("upload.bin"), { deadline: Date.now() + 5000 });
 */
export function createYaraScanner(options: YaraScannerOptions = {}): YaraScanner {
  const settings = parseOptions(yaraScannerOptionsSchema, options, {
    where: "@engine/yara: createYaraScanner",
    hint: "See the @engine/yara README for the options.",
  });
  const externals: Record<string, ExternalValue> = {
    ...Object.fromEntries(artifactExternals.map((name) => [name, ""])),
    ...settings.externals,
  };
  const noRulesGiven =
    settings.rulesDir === undefined &&
    settings.ruleFiles === undefined &&
    settings.rules === undefined;
  let current: LoadedRules | undefined;

  const report = (diagnostics: RuleDiagnostic[]): void => {
    if (settings.onDiagnostics) settings.onDiagnostics(diagnostics);
    else {
      const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error");
      if (errors.length > 0) {
        console.warn(
          `@engine/yara: ${errors.length} rule file(s) skipped, see scanner.diagnostics; first: ${formatDiagnostic(errors[0] as RuleDiagnostic)}`,
        );
      }
    }
  };

  /** Which engine to compile with: native when asked (or when it loads, for "auto"). */
  const chooseEngine = async (): Promise<
    Awaited<ReturnType<typeof loadNativeEngine>> | undefined
  > => {
    if (settings.engine === "wasm") return undefined;
    try {
      return await loadNativeEngine();
    } catch (error) {
      if (settings.engine === "native") throw error;
      return undefined; // auto: the WebAssembly engine works everywhere
    }
  };

  const load = async (onCompileError = settings.onCompileError): Promise<LoadedRules> => {
    const native = await chooseEngine();
    const rulesDir = noRulesGiven ? bundledRulesDirectory : settings.rulesDir;
    if (rulesDir !== undefined && !(await isDirectory(rulesDir))) {
      throw new InvalidOptionsError({
        message: `@engine/yara: the rules directory ${rulesDir} does not exist or is not a directory`,
        hint: "Point rulesDir (RULES_DIR) at a directory of .yar/.yara files.",
        scanner: settings.name,
      });
    }
    const { sources, diagnostics } = await loadRuleSources({
      rulesDir,
      ruleFiles: settings.ruleFiles,
      rules: settings.rules,
      limits: settings.ruleSourceLimits,
    });
    const limits = { workers: settings.workers, maxQueuedScans: settings.maxQueuedScans };
    const compilation = native
      ? await compileWithNative(native, sources, externals, limits)
      : await compileWithWasm(sources, externals, limits);
    for (const diagnostic of compilation.diagnostics) diagnostics.push(diagnostic);
    const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error");
    const accepted = compilation.accepted.flatMap((index) => {
      const source = sources[index];
      return source ? [source] : [];
    });
    if (accepted.length === 0 || (onCompileError === "fail" && errors.length > 0)) {
      await compilation.abandon();
      const listing = errors.slice(0, 5).map(formatDiagnostic).join("; ");
      throw new InvalidOptionsError({
        message:
          accepted.length === 0
            ? `@engine/yara: no usable rules (${sources.length} file(s) read, ${errors.length} with errors)${listing ? `: ${listing}` : ""}`
            : `@engine/yara: ${errors.length} rule file(s) do not compile: ${listing}`,
        hint:
          accepted.length === 0
            ? "Give rulesDir, ruleFiles or rules with at least one rule that compiles; a scanner without rules would find nothing."
            : 'Fix the files, or use onCompileError: "skip" to leave them out.',
        scanner: settings.name,
      });
    }
    const hash = createHash("sha256");
    for (const source of accepted)
      hash.update(source.namespace).update("\0").update(source.source).update("\0");
    const engine = await compilation.start();
    report(diagnostics);
    return {
      engine,
      diagnostics,
      signaturesVersion: hash.digest("hex").slice(0, 16),
      fileCount: accepted.length,
      typesContent: accepted.some((source) => /\bfiletype\b/.test(source.source)),
      inFlight: 0,
      retired: false,
    };
  };

  const retire = async (rules: LoadedRules): Promise<void> => {
    rules.retired = true;
    if (rules.inFlight === 0) await rules.engine.close();
  };

  // Bumped by close(): a reload that finishes after it drops what it loaded.
  let generation = 0;
  const scanner = defineScanner({
    name: settings.name,
    setup: async () => {
      current = await load();
    },
    close: async () => {
      generation += 1;
      const rules = current;
      current = undefined;
      if (rules) await retire(rules);
    },
    scan: async (artifact, { signal, deadline }) => {
      const rules = current;
      if (!rules)
        throw new BackendUnavailableError({
          message: "@engine/yara: the scanner is closed",
          scanner: settings.name,
        });
      // Counted before the first await: a reload that swaps rules meanwhile must not close them
      // under this scan.
      rules.inFlight += 1;
      try {
        const size = await artifact.byteLength();
        if (size !== undefined && size > settings.maxScanBytes) {
          throw new ArtifactTooLargeError({
            message: `@engine/yara: the artifact (${size} bytes) is over maxScanBytes (${settings.maxScanBytes} bytes)`,
            hint: "Raise maxScanBytes; YARA-X scans whole buffers in memory.",
            scanner: settings.name,
          });
        }
        // The head is read once here, when a rule reads `filetype`; a stream comes back as one
        // that replays it.
        const typed = rules.typesContent
          ? await withContentType(artifact, signal)
          : { artifact, filetype: "" };
        const matches = await rules.engine.scan(
          typed.artifact,
          artifactExternalValues(typed.artifact, typed.filetype),
          settings.maxScanBytes,
          signal,
          deadline,
        );
        const outcome = verdictFromMatches(matches, settings);
        const metadata = verdictMetadata(outcome.family)
          .product("yara")
          .scanner({
            version: yaraPackageVersion,
            vendor_version: rules.engine.vendorVersion,
            signatures_version: rules.signaturesVersion,
          })
          .set("yara", {
            engine: rules.engine.kind,
            matches: outcome.summaries.slice(0, 50),
            matchCount: outcome.summaries.length,
          })
          .build();
        return { verdict: outcome.verdict, confidence: outcome.confidence, metadata };
      } finally {
        rules.inFlight -= 1;
        if (rules.retired && rules.inFlight === 0) await rules.engine.close();
      }
    },
  });

  // One reload at a time: a second caller waits for the running one, then reloads again
  // (the files may have changed after the first one read them).
  let reloading: Promise<void> = Promise.resolve();
  const reload = (options: { onCompileError?: "fail" | "skip" } = {}): Promise<void> => {
    const started = generation;
    const next = reloading
      .catch(() => {})
      .then(async () => {
        if (started !== generation) return; // closed since reload() was called
        if (!current) {
          await scanner.setup?.();
          return;
        }
        const loaded = await load(options.onCompileError);
        if (started !== generation || !current) {
          await retire(loaded); // closed while loading: nothing to swap into
          return;
        }
        const previous = current;
        current = loaded;
        await retire(previous);
      });
    reloading = next;
    return next;
  };
  // Getters (not Object.assign, which would copy today's values) so they follow reloads.
  return Object.defineProperties(scanner, {
    diagnostics: { get: () => current?.diagnostics ?? [], enumerable: true },
    signaturesVersion: { get: () => current?.signaturesVersion, enumerable: true },
    ruleFileCount: { get: () => current?.fileCount ?? 0, enumerable: true },
    engine: { get: () => current?.engine.kind, enumerable: true },
    vendorVersion: { get: () => current?.engine.vendorVersion, enumerable: true },
    status: {
      value: (): YaraScannerStatus => {
        if (!current)
          return { ready: false, workers: 0, size: 0, busy: 0, queued: 0, maxQueued: 0 };
        const status = current.engine.status();
        return { ...status, ready: status.workers > 0 };
      },
      enumerable: true,
    },
    reload: { value: reload, enumerable: true },
  }) as YaraScanner;
}
