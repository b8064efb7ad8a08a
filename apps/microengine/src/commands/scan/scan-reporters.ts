import type { ScanResult } from "@engine/core";
import { engineVersion } from "../../operations/version.js";
import { detectedIn } from "./member-paths.js";
import { createSarifLogWriter, type TextSink, unknownReasons } from "./sarif-report.js";
import type { ScanEntry } from "./scan-in-walk-order.js";
import { printablePath } from "./scan-output.js";
import type { ScanSummary } from "./scan-summary.js";

/**
 * Each backend that found something in a result: `Family (backend)`, or `Family (backend in
 * archive.zip!/a.exe)` when it found it inside a container.
 */
function findings(result: ScanResult): string {
  const backends = (result.metadata.backends ?? []).filter(
    (backend) => backend.verdict === "malicious" || backend.verdict === "suspicious",
  );
  if (backends.length === 0) return result.metadata.malware_family || "(no family)";
  return backends
    .map((backend) => {
      const member = detectedIn(backend);
      return `${backend.malware_family || "(no family)"} (${backend.name}${member ? ` in ${member}` : ""})`;
    })
    .join(", ");
}

/** Reports a scan's entries in one output format, as they come. */
export interface ScanReporter {
  /** Reports one entry; called one at a time, in walk order. */
  entry(entry: ScanEntry): Promise<void>;
  /** Writes what comes after the entries (the counts, the end of the log). */
  end(summary: ScanSummary): Promise<void>;
  /** Releases what it holds, whether or not the scan ended. */
  close(): Promise<void>;
}

/** The line `--format text` prints for an entry: none for a benign file or a skipped entry. */
function textLine(entry: ScanEntry): string | undefined {
  const path = printablePath(entry.path);
  if (entry.kind === "failed" || entry.kind === "problem")
    return `ERROR ${path}: ${entry.problem}\n`;
  if (entry.kind === "skipped") return undefined; // on stderr, as SKIPPED
  const { verdict } = entry.result;
  if (verdict === "benign") return undefined;
  if (verdict === "unknown") return `UNKNOWN ${path}: ${unknownReasons(entry.result)}\n`;
  return `${verdict.toUpperCase()} ${path}: ${findings(entry.result)}\n`;
}

/** `--format text`: a line per malicious, suspicious, unknown or failed entry, then the counts. */
export function textReporter(print: TextSink): ScanReporter {
  return {
    async entry(entry) {
      const line = textLine(entry);
      if (line !== undefined) await print(line);
    },
    async end(summary) {
      let text = "\n  verdict     files\n";
      for (const verdict of ["malicious", "suspicious", "benign", "unknown"])
        text += `  ${verdict.padEnd(10)}  ${summary.counts[verdict] ?? 0}\n`;
      text += `  ${"errors".padEnd(10)}  ${summary.errors}\n`;
      if (summary.skipped) text += `  ${"skipped".padEnd(10)}  ${summary.skipped}\n`;
      if (summary.cycles) text += `  ${"cycles".padEnd(10)}  ${summary.cycles}\n`;
      if (summary.revisits) text += `  ${"revisits".padEnd(10)}  ${summary.revisits}\n`;
      if (summary.excluded) text += `  ${"excluded".padEnd(10)}  ${summary.excluded}\n`;
      text += `  ${"scanned".padEnd(10)}  ${summary.files}\n`;
      if (summary.interrupted)
        text += `\n  interrupted by ${summary.interrupted}: the counts are those so far\n`;
      await print(text);
    },
    close: async () => {},
  };
}

/** `--format json`: one JSON line per entry (skipped ones are on stderr only). */
export function jsonReporter(write: TextSink): ScanReporter {
  return {
    async entry(entry) {
      if (entry.kind === "scanned")
        await write(`${JSON.stringify({ path: entry.path, ...entry.result })}\n`);
      else if (entry.kind !== "skipped") {
        const error = { code: entry.code, message: entry.problem };
        await write(`${JSON.stringify({ path: entry.path, verdict: "unknown", error })}\n`);
      }
    },
    end: async () => {},
    close: async () => {},
  };
}

/** `--format sarif`: one SARIF 2.1.0 log, written as the scan goes (see createSarifLogWriter). */
export async function sarifReporter(write: TextSink): Promise<ScanReporter> {
  const log = await createSarifLogWriter(write, { toolVersion: engineVersion });
  return {
    async entry(entry) {
      if (entry.kind === "scanned") await log.scanned(entry.path, entry.result);
      else if (entry.kind === "skipped") {
        if (entry.cause !== "excluded") await log.skipped(entry.path, entry.reason);
      } else await log.problem(entry.path, entry.problem);
    },
    async end(summary) {
      // An interrupted scan is not a successful run: one error notification says so.
      if (summary.interrupted)
        await log.problem(process.cwd(), `interrupted by ${summary.interrupted}: not finished`);
      await log.end();
    },
    close: () => log.close(),
  };
}
