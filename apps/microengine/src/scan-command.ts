import { artifactFromFile, EngineError, type Scanner, type ScanResult } from "@engine/core";
import cliProgress from "cli-progress";
import type { BackendStatus } from "./engine-backends.js";
import { walkPaths } from "./file-walk.js";
import { type ScannedFile, type ScanProblem, sarifReport, unknownReasons } from "./sarif-report.js";
import { engineVersion } from "./version.js";

/** Output formats of `microengine scan`. */
export const scanFormats = ["text", "json", "sarif"] as const;
/** One of {@link scanFormats}. */
export type ScanFormat = (typeof scanFormats)[number];

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

/** The backend lines every command prints first: what runs, its version, its signatures, and warnings. */
export function backendBanner(statuses: readonly BackendStatus[]): string {
  return statuses
    .map(
      (status) =>
        `  ${status.name.padEnd(8)} ${status.running ? "on " : "off"}  ${status.reason}\n${status.warning ? `  ${"".padEnd(8)} WARNING: ${status.warning}\n` : ""}`,
    )
    .join("");
}

/**
 * A path as printed in text: as is, or JSON-quoted when it holds a control character (a
 * newline in a file name must not forge a line of the report, nor an escape sequence reach
 * the terminal).
 */
export function printablePath(path: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  return /[\u0000-\u001f\u007f-\u009f]/.test(path) ? JSON.stringify(path) : path;
}

/** Each backend that found something in a result: `Family (backend)`. */
function findings(result: ScanResult): string {
  const backends = (result.metadata.backends ?? []).filter(
    (backend) => backend.verdict === "malicious" || backend.verdict === "suspicious",
  );
  if (backends.length === 0) return result.metadata.malware_family || "(no family)";
  return backends
    .map((backend) => `${backend.malware_family || "(no family)"} (${backend.name})`)
    .join(", ");
}

/**
 * Scans files and directories (recursively). On stderr: the backends banner (with warnings
 * such as test-only signatures) and a progress bar on a terminal. On stdout: with `text`, the
 * summary (every malicious, suspicious and unknown file with its family and backend, every
 * entry that could not be scanned and why, then the counts); with `json`, one JSON line per
 * entry; with `sarif`, one SARIF 2.1.0 log (then errors are also written to stderr). Bad entries never stop
 * the walk: everything else is scanned first. Exit code: see {@link scanExitCode}.
 */
export async function scanPaths(
  scanner: Scanner,
  paths: string[],
  options: {
    format: ScanFormat;
    concurrency: number;
    timeoutMs: number;
    statuses: readonly BackendStatus[];
    out: NodeJS.WritableStream;
    err: NodeJS.WritableStream & { isTTY?: boolean };
  },
): Promise<ScanSummary> {
  const { out, err, format } = options;
  err.write(`microengine ${engineVersion} scan, backends:\n${backendBanner(options.statuses)}`);
  const summary: ScanSummary = { files: 0, counts: {}, errors: 0, skipped: 0 };
  const problems: ScanProblem[] = [];
  const skipped: ScanProblem[] = [];
  const problem = (path: string, text: string, code = "ARTIFACT_UNAVAILABLE"): void => {
    summary.errors += 1;
    problems.push({ path, problem: text });
    // In text, errors are in the summary on stdout; otherwise stdout is for machines.
    if (format !== "text") err.write(`ERROR ${printablePath(path)}: ${text}\n`);
    if (format === "json")
      out.write(
        `${JSON.stringify({ path, verdict: "unknown", error: { code, message: text } })}\n`,
      );
  };

  const files: string[] = [];
  for await (const entry of walkPaths(paths)) {
    if (entry.kind === "file") files.push(entry.path);
    else if (entry.kind === "problem") problem(entry.path, entry.problem);
    else {
      summary.skipped += 1;
      skipped.push({ path: entry.path, problem: entry.reason });
      err.write(`SKIPPED ${printablePath(entry.path)}: ${entry.reason}\n`);
    }
  }

  const bar =
    format === "text" && err.isTTY
      ? new cliProgress.SingleBar(
          { stream: err, format: "{bar} {value}/{total} {file}" },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(files.length, 0, { file: "" });
  const scanned: ScannedFile[] = [];
  const queue = files.values();
  await Promise.all(
    Array.from({ length: Math.min(options.concurrency, Math.max(1, files.length)) }, async () => {
      for (const file of queue) {
        let result: ScanResult;
        try {
          result = await scanner.scan(artifactFromFile(file), {
            deadline: Date.now() + options.timeoutMs,
          });
        } catch (caught) {
          const error = EngineError.isInstance(caught)
            ? caught
            : new EngineError({ message: String(caught), cause: caught });
          bar?.increment({ file });
          problem(file, `${error.code}: ${error.message}`, error.code);
          continue;
        }
        summary.files += 1;
        summary.counts[result.verdict] = (summary.counts[result.verdict] ?? 0) + 1;
        scanned.push({ path: file, result });
        if (format === "json") out.write(`${JSON.stringify({ path: file, ...result })}\n`);
        bar?.increment({ file });
      }
    }),
  );
  bar?.stop();

  // In path order whatever order the scans finished in: reports compare run to run.
  scanned.sort((first, second) => first.path.localeCompare(second.path));
  problems.sort((first, second) => first.path.localeCompare(second.path));
  if (format === "sarif") {
    out.write(
      `${JSON.stringify(sarifReport(scanned, problems, { toolVersion: engineVersion, skipped }), null, 2)}\n`,
    );
  } else if (format === "text") {
    for (const verdict of ["malicious", "suspicious"] as const)
      for (const { path, result } of scanned.filter((each) => each.result.verdict === verdict))
        out.write(`${verdict.toUpperCase()} ${printablePath(path)}: ${findings(result)}\n`);
    for (const { path, result } of scanned.filter((each) => each.result.verdict === "unknown"))
      out.write(`UNKNOWN ${printablePath(path)}: ${unknownReasons(result)}\n`);
    for (const { path, problem: text } of problems)
      out.write(`ERROR ${printablePath(path)}: ${text}\n`);
    out.write(`\n  verdict     files\n`);
    for (const verdict of ["malicious", "suspicious", "benign", "unknown"])
      out.write(`  ${verdict.padEnd(10)}  ${summary.counts[verdict] ?? 0}\n`);
    out.write(
      `  ${"errors".padEnd(10)}  ${summary.errors}\n${summary.skipped ? `  ${"skipped".padEnd(10)}  ${summary.skipped}\n` : ""}  ${"scanned".padEnd(10)}  ${summary.files}\n`,
    );
  }
  return summary;
}
