import {
  artifactFromFile,
  ConcurrencyLimit,
  EngineError,
  type Scanner,
  type ScanResult,
} from "@engine/core";
import { type WalkEntry, walkPaths } from "./file-walk.js";

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
