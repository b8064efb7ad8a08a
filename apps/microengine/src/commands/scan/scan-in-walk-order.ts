import {
  ArtifactTooLargeError,
  artifactFromFile,
  ConcurrencyLimit,
  EngineError,
  type Scanner,
  type ScanResult,
  scanResultForError,
} from "@engine/core";
import type { SkipCause, WalkEntry } from "./file-walk.js";
import { NextChange } from "./next-change.js";
import { walkPaths } from "./walk-thread.js";

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
  /** `--exclude` globs (see excludeTest). */
  exclude?: readonly string[] | undefined;
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
  /** Called when the scan gets its turn (the walk may then go on). */
  onStart: () => void;
}

/**
 * Scans waiting for their turn, per scan running at once (`--concurrency`): the walk does not
 * go further while more wait, so what it saw of a file (its size, its type) is never much older
 * than its scan.
 */
export const queuedScansPerConcurrency = 4;

/**
 * Entries the walk may go ahead of the first one not reported yet. Output is in walk order, so
 * a slow file at the head holds back every entry after it: with a window of a few entries, the
 * other scans ran out of work behind it and clamd's threads sat idle (3 of 16 core-seconds of a
 * directory benchmark, against 1.2 with this window). The scans behind the head go on while
 * fewer than {@link queuedScansPerConcurrency} x `--concurrency` wait for a turn and what is
 * held stays under {@link heldResultBytes}.
 */
export const scanWindowEntries = 1024;

/**
 * Bytes of finished results (measured as their JSON) held behind a slow head, past the first
 * {@link unmeasuredHeldResults}: a result can be large (the member paths of an archive's
 * report), and the window must not multiply that by a thousand.
 */
export const heldResultBytes = 32 * 1024 * 1024;

/** Finished results held before their size is measured (what was held before the window grew). */
export const unmeasuredHeldResults = 32;

async function scanFile(
  scanner: Scanner,
  path: string,
  size: number,
  options: FileScan,
): Promise<ScanEntry> {
  await options.limit.acquire();
  options.onStart();
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

/** An entry of the window: its promise, the entry itself once it settled, its measured size. */
interface WindowSlot {
  settled?: ScanEntry;
  entry: Promise<ScanEntry>;
  bytes?: number;
}

/** An entry's size as its JSON (what holding it costs, roughly). */
function measuredBytes(entry: ScanEntry): number {
  try {
    return JSON.stringify(entry).length;
  } catch {
    return heldResultBytes; // not measurable: count it as the whole budget
  }
}

/**
 * The entries between the walk and the output, in walk order, and what they hold: see
 * {@link scanWindowEntries}. `open` says whether the walk may add one more.
 */
class ScanWindow {
  readonly #slots: WindowSlot[] = [];
  readonly #limit: ConcurrencyLimit;
  readonly #size: number;
  #heldCount = 0;
  #heldBytes = 0;
  readonly #change = new NextChange();

  constructor(limit: ConcurrencyLimit) {
    this.#limit = limit;
    this.#size = Math.max(scanWindowEntries, limit.concurrency * (queuedScansPerConcurrency + 1));
  }

  get length(): number {
    return this.#slots.length;
  }

  get headSettled(): boolean {
    return this.#slots[0]?.settled !== undefined;
  }

  /** Room for one more entry: under the count, few scans waiting, held results under budget. */
  get open(): boolean {
    return (
      this.#slots.length < this.#size &&
      this.#limit.waiting < this.#limit.concurrency * queuedScansPerConcurrency &&
      this.#heldBytes < heldResultBytes
    );
  }

  push(slot: WindowSlot): void {
    this.#slots.push(slot);
    if (slot.settled) this.#hold(slot, slot.settled);
    else
      slot.entry.then((entry) => {
        slot.settled = entry;
        this.#hold(slot, entry);
        this.notify();
      });
  }

  /** The head, once it settled; what it held is released. */
  async shift(): Promise<ScanEntry> {
    const slot = this.#slots.shift() as WindowSlot;
    const entry = slot.settled ?? (await slot.entry);
    this.#heldCount -= 1;
    this.#heldBytes -= slot.bytes ?? 0;
    return entry;
  }

  /** Resolves at the next change: a scan started or an entry settled. */
  changed(): Promise<void> {
    return this.#change.wait();
  }

  notify(): void {
    this.#change.notify();
  }

  /** Every entry's promise (to wait for what is in flight). */
  entries(): Promise<ScanEntry>[] {
    return this.#slots.map((slot) => slot.entry);
  }

  #hold(slot: WindowSlot, entry: ScanEntry): void {
    this.#heldCount += 1;
    if (this.#heldCount <= unmeasuredHeldResults) return;
    slot.bytes = measuredBytes(entry);
    this.#heldBytes += slot.bytes;
  }
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
  // (ScanWindow.push records it as settled when it settles)
  return { entry: scanFile(scanner, walked.path, walked.size, options) };
}

function settledSlot(entry: ScanEntry): WindowSlot {
  return { settled: entry, entry: Promise.resolve(entry) };
}

/**
 * Walks `paths` (see {@link walkPaths}) and scans each file as the walk reaches it, yielding
 * every entry in walk order whatever order the scans finish in. At most `concurrency` scans
 * run at once; the walk goes on behind a slow entry at the head while fewer than
 * {@link queuedScansPerConcurrency} x `concurrency` scans wait for a turn, up to
 * {@link scanWindowEntries} entries and {@link heldResultBytes} of finished results: what it
 * holds is bounded by that window, never by the number of files.
 * A file over `maxFileBytes` is an `unknown` answer without a scan. A scan that throws is a
 * `failed` entry; the generator itself never throws for an entry. Once `signal` is aborted it
 * yields nothing more, and returns once the scans in flight settled (they are aborted too); so
 * does a caller that stops reading early (the scans it will never see are stopped).
 */
export async function* scanInWalkOrder(
  scanner: Scanner,
  paths: readonly string[],
  options: WalkOrderOptions,
): AsyncGenerator<ScanEntry> {
  const { signal } = options;
  const limit = new ConcurrencyLimit({ concurrency: options.concurrency, what: "scans" });
  const window = new ScanWindow(limit);
  // The scans' own signal: the caller's, and this generator's end (a caller that stops early).
  const stop = new AbortController();
  const forward = () => stop.abort(signal?.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener("abort", forward, { once: true });
  const scan = {
    limit,
    timeoutMs: options.timeoutMs,
    signal: stop.signal,
    maxFileBytes: options.maxFileBytes,
    onStart: () => window.notify(),
  };
  try {
    for await (const walked of walkPaths(paths, { exclude: options.exclude, signal })) {
      options.onFound?.();
      window.push(windowSlot(walked, scanner, scan));
      // Whatever is done at the head goes out now; without room for more, wait for a change.
      while (window.headSettled || (!window.open && window.length > 0)) {
        if (!window.headSettled) {
          await window.changed();
          continue;
        }
        const entry = await window.shift();
        if (signal?.aborted) return;
        yield entry;
      }
    }
    while (window.length > 0 && !signal?.aborted) {
      const entry = await window.shift();
      if (!signal?.aborted) yield entry;
    }
  } finally {
    signal?.removeEventListener("abort", forward);
    // Never leave a scan running behind the caller (it disposes of the backends next); those
    // nobody will read are stopped first (nothing is left in the window after a full walk).
    if (window.length > 0) stop.abort(signal?.reason);
    await Promise.allSettled(window.entries());
  }
}
