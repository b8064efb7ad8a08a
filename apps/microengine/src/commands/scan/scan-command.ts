import type { Scanner } from "@engine/core";
import { type Command, Option } from "commander";
import type { BackendStatus } from "../../backends/build-backends.js";
import { ConfigError } from "../../config/config.js";
import { engineVersion } from "../../operations/version.js";
import { backendBanner } from "../backend-banner.js";
import { type CommandFlags, wholeNumber, withEngineOptions } from "../command-flags.js";
import { withBackends } from "../one-shot-backends.js";
import { scanInWalkOrder } from "./scan-in-walk-order.js";
import { printablePath, sinkOf } from "./scan-output.js";
import { ScanProgress } from "./scan-progress.js";
import { jsonReporter, sarifReporter, textReporter } from "./scan-reporters.js";
import { countEntry, type ScanSummary, scanExitCode } from "./scan-summary.js";

/** Output formats of `microengine scan`. */
export const scanFormats = ["text", "json", "sarif"] as const;
/** One of {@link scanFormats}. */
export type ScanFormat = (typeof scanFormats)[number];

/** Adds `microengine scan <paths...>`; its exit code is {@link scanExitCode}'s. */
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
    .option("--no-unpack", "UNPACK=false: scan archives as they are, not their members")
    .action(async (paths: string[], flags: CommandFlags) => {
      const concurrency = wholeNumber(flags.concurrency, "--concurrency", 1, 256);
      const timeoutMs = wholeNumber(flags.timeout, "--timeout", 1, 24 * 3600 * 1000);
      // An empty argument (an unset shell variable) would otherwise scan the working directory.
      if (paths.some((path) => path.trim() === ""))
        throw new ConfigError(["scan: an empty path was given (an unset variable?)"]);
      await withBackends(flags, async (backends) => {
        const summary = await scanPaths(backends.scanner, paths, {
          format: flags.json ? "json" : (flags.format as ScanFormat),
          concurrency,
          timeoutMs,
          statuses: backends.statuses,
          out: process.stdout,
          err: process.stderr,
        });
        process.exitCode = scanExitCode(summary);
      });
    });
}

/**
 * Scans files and directories (recursively). On stderr: the backends banner (with warnings
 * such as test-only signatures) and a progress line on a terminal. On stdout, as the scan goes
 * and in walk order (see {@link scanInWalkOrder}): with `text`, every malicious, suspicious and
 * unknown file with its family and backend and every entry that could not be scanned and why,
 * then the counts; with `json`, one JSON line per entry; with `sarif`, one SARIF 2.1.0 log
 * (then errors are also written to stderr). Bad entries never stop the walk: everything else is
 * scanned first. Memory does not grow with the files scanned: a reported entry leaves only its
 * counts behind. Exit code: see {@link scanExitCode}.
 */
export async function scanPaths(
  scanner: Scanner,
  paths: string[],
  options: {
    format: ScanFormat;
    concurrency: number;
    timeoutMs: number;
    statuses: readonly BackendStatus[];
    out: NodeJS.WritableStream & { isTTY?: boolean };
    err: NodeJS.WritableStream & { isTTY?: boolean };
  },
): Promise<ScanSummary> {
  const { out, err, format } = options;
  err.write(`microengine ${engineVersion} scan, backends:\n${backendBanner(options.statuses)}`);
  const summary: ScanSummary = { files: 0, counts: {}, errors: 0, skipped: 0 };
  const progress = new ScanProgress({ enabled: format === "text" && err.isTTY === true, out, err });
  const reporter =
    format === "text"
      ? textReporter((text) => progress.print(out, text))
      : format === "json"
        ? jsonReporter(sinkOf(out))
        : await sarifReporter(sinkOf(out));
  try {
    for await (const entry of scanInWalkOrder(scanner, paths, options)) {
      countEntry(summary, entry);
      if (entry.kind === "skipped")
        await progress.print(err, `SKIPPED ${printablePath(entry.path)}: ${entry.reason}\n`);
      // In text, errors are in the report on stdout; otherwise stdout is for machines.
      else if (entry.kind !== "scanned" && format !== "text")
        await progress.print(err, `ERROR ${printablePath(entry.path)}: ${entry.problem}\n`);
      await reporter.entry(entry);
      if (entry.kind === "scanned" || entry.kind === "failed") progress.fileDone(entry.path);
    }
    progress.stop();
    await reporter.end(summary);
  } finally {
    progress.stop();
    await reporter.close();
  }
  return summary;
}
