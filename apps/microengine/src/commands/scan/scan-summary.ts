import type { ScanEntry } from "./scan-in-walk-order.js";

/** What `microengine scan` found, for the summary and the exit code. */
export interface ScanSummary {
  /** Files scanned (whatever their verdict). */
  files: number;
  /** Scanned files by verdict. */
  counts: Record<string, number>;
  /** Entries that could not be scanned: unreadable, loops, dangling links, failed scans. */
  errors: number;
  /** Entries with nothing to scan (FIFOs, sockets, devices). */
  skipped: number;
  /** Links back to a directory being walked (cycles), not entered again. */
  cycles: number;
  /** Second paths to a directory already walked (not a cycle), not entered again. */
  revisits: number;
  /** Entries `--exclude` matched (an excluded directory counts once). */
  excluded: number;
  /** The signal that stopped the scan (SIGINT, SIGTERM, SIGHUP): the counts are those so far. */
  interrupted?: NodeJS.Signals;
}

/** An empty summary. */
export function emptySummary(): ScanSummary {
  return { files: 0, counts: {}, errors: 0, skipped: 0, cycles: 0, revisits: 0, excluded: 0 };
}

/**
 * The exit code of a scan, as clamscan's: 2 when something could not be scanned or could not
 * be looked into (an error, an `unknown` answer), else 1 when something is malicious or
 * suspicious, else 0.
 */
export function scanExitCode(summary: ScanSummary): 0 | 1 | 2 {
  if (summary.errors > 0 || (summary.counts.unknown ?? 0) > 0) return 2;
  return (summary.counts.malicious ?? 0) + (summary.counts.suspicious ?? 0) > 0 ? 1 : 0;
}

/** Counts an entry in the summary. */
export function countEntry(summary: ScanSummary, entry: ScanEntry): void {
  if (entry.kind === "scanned") {
    summary.files += 1;
    summary.counts[entry.result.verdict] = (summary.counts[entry.result.verdict] ?? 0) + 1;
  } else if (entry.kind !== "skipped") summary.errors += 1;
  else if (entry.cause === "cycle") summary.cycles += 1;
  else if (entry.cause === "revisit") summary.revisits += 1;
  else if (entry.cause === "excluded") summary.excluded += 1;
  else summary.skipped += 1;
}
