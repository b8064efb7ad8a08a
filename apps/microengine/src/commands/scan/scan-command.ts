import type { Scanner } from "@engine/core";
import { type Command, Option } from "commander";
import type { BackendStatus } from "../../backends/build-backends.js";
import { ConfigError } from "../../config/config.js";
import { engineVersion } from "../../operations/version.js";
import { backendBanner } from "../backend-banner.js";
import { type CommandFlags, wholeNumber, withEngineOptions } from "../command-flags.js";
import { withBackends } from "../one-shot-backends.js";
import { type ScanEntry, scanInWalkOrder } from "./scan-in-walk-order.js";
import { printablePath } from "./scan-output.js";
import { progressMode, ScanProgress } from "./scan-progress.js";
import { jsonReporter, type ScanReporter, sarifReporter, textReporter } from "./scan-reporters.js";
import { type ScanStop, signalExitCode, stopOnScanSignals } from "./scan-signals.js";
import { countEntry, emptySummary, type ScanSummary, scanExitCode } from "./scan-summary.js";

/** Output formats of `microengine scan`. */
export const scanFormats = ["text", "json", "sarif"] as const;
/** One of {@link scanFormats}. */
export type ScanFormat = (typeof scanFormats)[number];

/** Collects a repeatable flag's values. */
function repeated(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Adds `microengine scan <paths...>`; its exit code is {@link scanExitCode}'s (or 128 + signal). */
export function addScanCommand(program: Command): void {
  withEngineOptions(program.command("scan").description("scan files and directories (recursively)"))
    .argument("<paths...>")
    .addOption(
      new Option("--format <format>", "text (summary), json (one line per file) or sarif")
        .choices(scanFormats)
        .default("text"),
    )
    .option("--json", "the same as --format json")
    .option("--concurrency <n>", "scans at once", "4")
    .option("--timeout <ms>", "per-artifact deadline in ms", "60000")
    .option(
      "--max-file-size <size>",
      "ARTIFACT_MAX_BYTES: larger files are unknown, not scanned (bytes, or 500M, 2G; default 100M)",
    )
    .option(
      "--exclude <glob>",
      "skip files and directories that match (repeatable): a glob without / matches names at any depth",
      repeated,
      [],
    )
    .option("--progress", "progress on stderr (not a terminal: a line every 5 s)")
    .option("--no-progress", "no progress (default: shown when stderr is a terminal)")
    .option("--no-unpack", "UNPACK=false: scan archives as they are, not their members")
    .action((paths: string[], flags: CommandFlags) => runScan(paths, flags));
}

/** `microengine scan`: the scan, stopped cleanly by SIGINT, SIGTERM or SIGHUP. */
async function runScan(paths: string[], flags: CommandFlags): Promise<void> {
  const concurrency = wholeNumber(flags.concurrency, "--concurrency", 1, 256);
  const timeoutMs = wholeNumber(flags.timeout, "--timeout", 1, 24 * 3600 * 1000);
  // An empty argument (an unset shell variable) would otherwise scan the working directory.
  if (paths.some((path) => path.trim() === ""))
    throw new ConfigError(["scan: an empty path was given (an unset variable?)"]);
  const exclude = flags.exclude as string[];
  if (exclude.some((pattern) => pattern.trim() === ""))
    throw new ConfigError(["scan: --exclude: an empty pattern was given"]);
  const stop = stopOnScanSignals();
  try {
    await withBackends(flags, async (backends, config) => {
      const summary = await scanPaths(backends.scanner, paths, {
        format: flags.json ? "json" : (flags.format as ScanFormat),
        concurrency,
        timeoutMs,
        maxFileBytes: config.ARTIFACT_MAX_BYTES,
        exclude,
        progress: flags.progress as boolean | undefined,
        stop,
        statuses: backends.statuses,
        out: process.stdout,
        err: process.stderr,
      });
      process.exitCode = scanExitCode(summary);
    });
  } finally {
    stop.release();
  }
  const signal = stop.received();
  if (signal) process.exitCode = signalExitCode(signal);
}

/** What {@link scanPaths} is given besides the scanner and the paths. */
export interface ScanPathsOptions {
  format: ScanFormat;
  concurrency: number;
  timeoutMs: number;
  /** Files larger are `unknown`, not scanned (ARTIFACT_MAX_BYTES). */
  maxFileBytes: number;
  /** `--exclude` globs (see excludeTest). */
  exclude?: readonly string[];
  /** `--progress` (true), `--no-progress` (false) or neither; see progressMode. */
  progress?: boolean | undefined;
  /** Lines of the `lines` progress mode, every this many ms. Default 5000. */
  progressIntervalMs?: number;
  /** Stops the scan (SIGINT, SIGTERM, SIGHUP): see stopOnScanSignals. */
  stop?: Pick<ScanStop, "signal" | "received">;
  statuses: readonly BackendStatus[];
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

/** The reporter of `format`, writing to `out` around the progress line. */
async function reporterFor(
  format: ScanFormat,
  progress: ScanProgress,
  out: NodeJS.WritableStream,
): Promise<ScanReporter> {
  const print = (text: string) => progress.print(out, text);
  if (format === "text") return textReporter(print);
  return format === "json" ? jsonReporter(print) : await sarifReporter(print);
}

/** Reports one entry: on stderr too when it was skipped or (outside text) could not be scanned. */
async function reportEntry(
  entry: ScanEntry,
  format: ScanFormat,
  progress: ScanProgress,
  options: { reporter: ScanReporter; err: NodeJS.WritableStream },
): Promise<void> {
  const { err } = options;
  if (entry.kind === "skipped") {
    if (entry.cause !== "excluded")
      await progress.print(err, `SKIPPED ${printablePath(entry.path)}: ${entry.reason}\n`);
  }
  // In text, errors are in the report on stdout; otherwise stdout is for machines.
  else if (entry.kind !== "scanned" && format !== "text")
    await progress.print(err, `ERROR ${printablePath(entry.path)}: ${entry.problem}\n`);
  await options.reporter.entry(entry);
  if (entry.kind === "scanned" || entry.kind === "failed") progress.fileDone(entry.path);
}

/**
 * Scans files and directories (recursively). On stderr: the backends banner (with warnings
 * such as test-only signatures) and the progress (see progressMode), never on stdout. On
 * stdout, as the scan goes and in walk order (see {@link scanInWalkOrder}): with `text`, every
 * malicious, suspicious and unknown file with its family and backend and every entry that
 * could not be scanned and why, then the counts; with `json`, one JSON line per entry; with
 * `sarif`, one SARIF 2.1.0 log (then errors are also written to stderr). Bad entries never
 * stop the walk: everything else is scanned first. Memory does not grow with the files
 * scanned: a reported entry leaves only its counts behind. Once `stop.signal` is aborted, the
 * walk and the scans stop, and the report ends with what it had (the counts so far, marked
 * interrupted). Exit code: see {@link scanExitCode}.
 */
export async function scanPaths(
  scanner: Scanner,
  paths: string[],
  options: ScanPathsOptions,
): Promise<ScanSummary> {
  const { out, err, format, stop } = options;
  err.write(`microengine ${engineVersion} scan, backends:\n${backendBanner(options.statuses)}`);
  const summary = emptySummary();
  const progress = new ScanProgress({
    mode: progressMode(options.progress, err.isTTY === true),
    out,
    err,
    ...(options.progressIntervalMs ? { intervalMs: options.progressIntervalMs } : {}),
  });
  const reporter = await reporterFor(format, progress, out);
  // Said at once (around the progress line): disposing of the backends may take a moment.
  const announce = () =>
    progress.print(err, `microengine: ${stop?.received()}: stopping the scan and the backends\n`);
  if (stop?.signal.aborted) await announce();
  else stop?.signal.addEventListener("abort", () => void announce(), { once: true });
  try {
    for await (const entry of scanInWalkOrder(scanner, paths, {
      ...options,
      exclude: options.exclude ?? [],
      signal: stop?.signal,
      onFound: () => progress.entryFound(),
    })) {
      countEntry(summary, entry);
      await reportEntry(entry, format, progress, { reporter, err });
    }
    progress.stop();
    const interrupted = stop?.received();
    if (interrupted) {
      summary.interrupted = interrupted;
      err.write(`scan interrupted by ${interrupted}: ${progress.summaryLine()}\n`);
    }
    await reporter.end(summary);
  } finally {
    progress.stop();
    await reporter.close();
  }
  return summary;
}
