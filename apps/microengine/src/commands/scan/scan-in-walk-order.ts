import {
  ArtifactTooLargeError,
  artifactFromFile,
  ConcurrencyLimit,
  EngineError,
  type Scanner,
  type ScanResult,
  scanResultForError,
} from "@engine/core";
import type { ExcludeTest } from "./exclude-patterns.js";
import { type SkipCause, type WalkEntry, walkPaths } from "./file-walk.js";

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
  /** Not a regular file, a cycle, a revisit, or excluded: never opened (see SkipCause). */
  | { kind: "skipped"; path: string; reason: string; cause: SkipCause };

/** How {@link scanInWalkOrder} scans. */
export interface WalkOrderOptions {
  concurrency: number;
  /** Each scan's deadline, from when it starts (ms). */
  timeoutMs: number;
  /** Files larger are not scanned: `unknown`, `SKIPPED:TOO_LARGE` (ARTIFACT_MAX_BYTES). */
  maxFileBytes: number;
  exclude?: ExcludeTest | undefined;
  /** Stops the walk and the scans in flight; what was not reported by then is not. */
  signal?: AbortSignal | undefined;
  /** Called for each entry the walk finds, as it finds it (for the progress). */
  onFound?: (() => void) | undefined;
}

/** What one file's scan needs. */
interface FileScan {
  limit: ConcurrencyLimit;
  timeoutMs: number;
  signal: AbortSignal | undefined;
}

/**
 * Entries a scan holds at most, per scan it runs at once (`--concurrency`), when that is more
 * than {@link minimumScanWindow}.
 */
export const scanWindowPerConcurrency = 4;

/**
 * Entries the walk may go ahead of the first one not reported yet, whatever `--concurrency`
 * is. Output is in walk order, so a slow file at the head holds back every entry after it: with
 * a window of a few entries, the other scans ran out of work behind it and clamd's threads sat
 * idle (3 of 16 core-seconds of a directory benchmark, against 1.1 with this window). A
 * reported entry leaves nothing behind, so this bounds what a scan holds: at most this many
 * results (a few MB), never a number that grows with the files scanned.
 */
export const minimumScanWindow = 1024;

/**
 * How many entries the walk goes ahead of the first one not reported yet (reported or not,
 * scanned or waiting for a turn): the larger of {@link minimumScanWindow} and
 * {@link scanWindowPerConcurrency} x `concurrency`.
 */
export function scanWindow(concurrency: number): number {
  return Math.max(minimumScanWindow, concurrency * scanWindowPerConcurrency);
}

async function scanFile(
  scanner: Scanner,
  path: string,
  size: number,
  options: FileScan,
): Promise<ScanEntry> {
  await options.limit.acquire();
  try {
    // Stopped while it waited for its turn: never started (it is not reported either).
    if (options.signal?.aborted)
      return { kind: "failed", path, problem: "SCAN_ABORTED: not started", code: "SCAN_ABORTED" };
    // The walk's size: backends need not look it up again (a file that changed since is read
    // as it is now, within each backend's own limits).
    const result = await scanner.scan(artifactFromFile(path, { size }), {
      deadline: Date.now() + options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
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

/** The answer for a file over the size limit: `unknown`, never scanned. */
export function tooLargeResult(size: number, maxFileBytes: number): ScanResult {
  const reason = `the file (${size} bytes) is over --max-file-size / ARTIFACT_MAX_BYTES (${maxFileBytes} bytes): not scanned`;
  return scanResultForError(new ArtifactTooLargeError({ message: reason, publicMessage: reason }));
}

function windowSlot(
  walked: WalkEntry,
  scanner: Scanner,
  options: FileScan & { maxFileBytes: number },
): WindowSlot {
  if (walked.kind === "problem") return settledSlot({ ...walked, code: "ARTIFACT_UNAVAILABLE" });
  if (walked.kind === "skipped") return settledSlot(walked);
  if (walked.size > options.maxFileBytes) {
    const result = tooLargeResult(walked.size, options.maxFileBytes);
    return settledSlot({ kind: "scanned", path: walked.path, result });
  }
  const slot: WindowSlot = { entry: scanFile(scanner, walked.path, walked.size, options) };
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
 * run at once, and the walk goes at most {@link scanWindow} entries ahead of the first
 * entry not yielded yet (a slow scan holds the others back only once the window is full):
 * what it holds is bounded by the window, never by the number of files.
 * A file over `maxFileBytes` is an `unknown` answer without a scan. A scan that throws is a
 * `failed` entry; the generator itself never throws for an entry. Once `signal` is aborted it
 * yields nothing more, and returns once the scans in flight settled (they are aborted too).
 */
export async function* scanInWalkOrder(
  scanner: Scanner,
  paths: readonly string[],
  options: WalkOrderOptions,
): AsyncGenerator<ScanEntry> {
  const { signal } = options;
  const limit = new ConcurrencyLimit({ concurrency: options.concurrency, what: "scans" });
  const scan = { limit, timeoutMs: options.timeoutMs, signal, maxFileBytes: options.maxFileBytes };
  const windowSize = scanWindow(options.concurrency);
  const window: WindowSlot[] = [];
  const next = async (): Promise<ScanEntry> => {
    const slot = window.shift() as WindowSlot;
    return slot.settled ?? (await slot.entry);
  };
  try {
    for await (const walked of walkPaths(paths, { exclude: options.exclude, signal })) {
      options.onFound?.();
      window.push(windowSlot(walked, scanner, scan));
      // Whatever is done at the head goes out now; when the window is full, wait for the head.
      while (window[0]?.settled || window.length >= windowSize) {
        const entry = await next();
        if (signal?.aborted) return;
        yield entry;
      }
    }
    while (window.length > 0 && !signal?.aborted) {
      const entry = await next();
      if (!signal?.aborted) yield entry;
    }
  } finally {
    // Never leave a scan running behind the caller (it disposes of the backends next).
    await Promise.allSettled(window.map((slot) => slot.entry));
  }
}
