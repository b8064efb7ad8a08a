import { once } from "node:events";
import {
  artifactFromFile,
  ConcurrencyLimit,
  EngineError,
  type Scanner,
  type ScanResult,
} from "@engine/core";
import cliProgress from "cli-progress";
import type { BackendStatus } from "../../backends/build-backends.js";
import { engineVersion } from "../../operations/version.js";
import { type WalkEntry, walkPaths } from "./file-walk.js";
import { createSarifLogWriter, type TextSink, unknownReasons } from "./sarif-report.js";

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
 * One entry of a scan, as {@link scanInWalkOrder} yields it: a scanned file and its result, a
 * file whose scan failed, an entry the walk could not read, or one with nothing to scan.
 */
export type ScanEntry =
  | { kind: "scanned"; path: string; result: ScanResult }
  /** The scan threw: `problem` is `CODE: message`. */
  | { kind: "failed"; path: string; problem: string; code: string }
  /** Could not be read (missing, dangling link, loop, permission): never scanned. */
  | { kind: "problem"; path: string; problem: string; code: "ARTIFACT_UNAVAILABLE" }
  /** Not a regular file (a FIFO, socket or device): never opened. */
  | { kind: "skipped"; path: string; reason: string };

/**
 * Entries a scan holds at most, per scan it runs at once (`--concurrency`): the walk goes at
 * most this many times `--concurrency` entries ahead of the first one not reported yet.
 */
export const scanWindowPerConcurrency = 4;

async function scanFile(
  scanner: Scanner,
  path: string,
  options: { limit: ConcurrencyLimit; timeoutMs: number },
): Promise<ScanEntry> {
  await options.limit.acquire();
  try {
    const result = await scanner.scan(artifactFromFile(path), {
      deadline: Date.now() + options.timeoutMs,
    });
    return { kind: "scanned", path, result };
  } catch (caught) {
    const error = EngineError.isInstance(caught)
      ? caught
      : new EngineError({ message: String(caught), cause: caught });
    return { kind: "failed", path, problem: `${error.code}: ${error.message}`, code: error.code };
  } finally {
    options.limit.release();
  }
}

/** An entry of the window: its promise, and the entry itself once it settled. */
interface WindowSlot {
  settled?: ScanEntry;
  entry: Promise<ScanEntry>;
}

function windowSlot(
  walked: WalkEntry,
  scanner: Scanner,
  options: { limit: ConcurrencyLimit; timeoutMs: number },
): WindowSlot {
  if (walked.kind === "problem") return settledSlot({ ...walked, code: "ARTIFACT_UNAVAILABLE" });
  if (walked.kind === "skipped") return settledSlot(walked);
  const slot: WindowSlot = { entry: scanFile(scanner, walked.path, options) };
  slot.entry.then((entry) => {
    slot.settled = entry;
  });
  return slot;
}

function settledSlot(entry: ScanEntry): WindowSlot {
  return { settled: entry, entry: Promise.resolve(entry) };
}

/**
 * Walks `paths` (see {@link walkPaths}) and scans each file as the walk reaches it, yielding
 * every entry in walk order whatever order the scans finish in. At most `concurrency` scans
 * run at once, and the walk goes at most {@link scanWindowPerConcurrency} x `concurrency`
 * entries ahead of the first entry not yielded yet (a slow scan holds the others back until
 * the window is full): what it holds is bounded by the window, never by the number of files.
 * A scan that throws is a `failed` entry; the generator itself never throws for an entry.
 * @param options.timeoutMs each scan's deadline, from when it starts (ms)
 */
export async function* scanInWalkOrder(
  scanner: Scanner,
  paths: readonly string[],
  options: { concurrency: number; timeoutMs: number },
): AsyncGenerator<ScanEntry> {
  const limit = new ConcurrencyLimit({ concurrency: options.concurrency, what: "scans" });
  const windowSize = options.concurrency * scanWindowPerConcurrency;
  const window: WindowSlot[] = [];
  const next = async (): Promise<ScanEntry> => {
    const slot = window.shift() as WindowSlot;
    return slot.settled ?? (await slot.entry);
  };
  for await (const walked of walkPaths(paths)) {
    window.push(windowSlot(walked, scanner, { limit, timeoutMs: options.timeoutMs }));
    // Whatever is done at the head goes out now; when the window is full, wait for the head.
    while (window[0]?.settled || window.length >= windowSize) yield await next();
  }
  while (window.length > 0) yield await next();
}

/** Writes to a stream, waiting for it to drain when its buffer is full. */
function sinkOf(stream: NodeJS.WritableStream): TextSink {
  return async (text) => {
    if (!stream.write(text)) await once(stream as NodeJS.EventEmitter, "drain");
  };
}

/**
 * The progress line on a terminal: the files scanned so far and the one just done (a walk
 * that streams does not know the total). Lines for the same terminal go through `print`,
 * which takes the line away and draws it again below them.
 */
class ScanProgress {
  readonly #bar: cliProgress.SingleBar | undefined;
  readonly #out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly #err: NodeJS.WritableStream;
  #files = 0;
  #shown = false;

  constructor(options: {
    enabled: boolean;
    out: NodeJS.WritableStream & { isTTY?: boolean };
    err: NodeJS.WritableStream;
  }) {
    this.#out = options.out;
    this.#err = options.err;
    this.#bar = options.enabled
      ? new cliProgress.SingleBar(
          { stream: options.err, format: "{value} files scanned {file}", clearOnComplete: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    this.#bar?.start(0, 0, { file: "" });
    this.#shown = this.#bar !== undefined;
  }

  /** Counts a file scanned (or failed). */
  fileDone(path: string): void {
    this.#files += 1;
    this.#bar?.increment({ file: printablePath(path) });
  }

  /** Writes text to `stream`, around the progress line when both are on the same terminal. */
  async print(stream: NodeJS.WritableStream, text: string): Promise<void> {
    const around = this.#shown && (stream === this.#err || this.#out.isTTY === true);
    if (around) this.#bar?.stop();
    await sinkOf(stream)(text);
    if (around) this.#bar?.start(0, this.#files, { file: "" });
  }

  /** Takes the progress line away for good. */
  stop(): void {
    this.#bar?.stop();
    this.#shown = false;
  }
}

/** Reports a scan's entries in one output format, as they come. */
interface ScanReporter {
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
function textReporter(print: TextSink): ScanReporter {
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
      await print(`${text}  ${"scanned".padEnd(10)}  ${summary.files}\n`);
    },
    close: async () => {},
  };
}

/** `--format json`: one JSON line per entry (skipped ones are on stderr only). */
function jsonReporter(write: TextSink): ScanReporter {
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
async function sarifReporter(write: TextSink): Promise<ScanReporter> {
  const log = await createSarifLogWriter(write, { toolVersion: engineVersion });
  return {
    async entry(entry) {
      if (entry.kind === "scanned") await log.scanned(entry.path, entry.result);
      else if (entry.kind === "skipped") await log.skipped(entry.path, entry.reason);
      else await log.problem(entry.path, entry.problem);
    },
    end: () => log.end(),
    close: () => log.close(),
  };
}

/** Counts an entry in the summary. */
function countEntry(summary: ScanSummary, entry: ScanEntry): void {
  if (entry.kind === "scanned") {
    summary.files += 1;
    summary.counts[entry.result.verdict] = (summary.counts[entry.result.verdict] ?? 0) + 1;
  } else if (entry.kind === "skipped") summary.skipped += 1;
  else summary.errors += 1;
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
