import type { Scanner } from "@engine/core";
import type { BackendStatus } from "../../backends/build-backends.js";
import { engineVersion } from "../../operations/version.js";
import { backendBanner } from "../backend-banner.js";
import { scanInWalkOrder } from "./scan-in-walk-order.js";
import { printablePath, sinkOf } from "./scan-output.js";
import { ScanProgress } from "./scan-progress.js";
import { jsonReporter, sarifReporter, textReporter } from "./scan-reporters.js";
import { countEntry, type ScanSummary } from "./scan-summary.js";

export { type ScanSummary, scanExitCode } from "./scan-summary.js";

/** Output formats of `microengine scan`. */
export const scanFormats = ["text", "json", "sarif"] as const;
/** One of {@link scanFormats}. */
export type ScanFormat = (typeof scanFormats)[number];

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
