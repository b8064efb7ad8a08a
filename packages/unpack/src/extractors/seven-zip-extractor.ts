import {
  type ContainerSource,
  type ExtractContext,
  type ExtractedEntry,
  type Extractor,
  UnpackSkip,
} from "./extractor.js";
import { indexLzip, type LzipIndex, lzmaSegments } from "./lzip-to-lzma.js";
import { methodName } from "./seven-zip-listing.js";
import type {
  InputSegment,
  ListedEntry,
  Listing,
  Outcome,
  SevenZipFormat,
  WorkerEvent,
} from "./seven-zip-protocol.js";
import { SevenZipRun, sevenZipHeapLimitBytes } from "./seven-zip-run.js";
import { readRange, streamFrom } from "./source-reading.js";
import { innerName } from "./zlib-extractors.js";

export type { ListedEntry as SevenZipListedEntry, SevenZipFormat };

/** Options of {@link sevenZipEntries}. */
export interface SevenZipEntriesOptions {
  /**
   * Which listed entries to extract (default: every file). The others are passed over
   * without an event: the zip extractor asks only for the entries whose method it lacks.
   */
  select?: ((entry: ListedEntry) => boolean) | undefined;
  /** For an ISO: which of its file systems to read (`Iso` 9660 or `Udf`; default: UDF when present). */
  isoView?: "Iso" | "Udf" | undefined;
}

/** How 7-Zip is shown one container. */
interface Plan {
  /** 7-Zip's archive type (`-t`). */
  type: string;
  segments: InputSegment[];
  /** One entry, the whole decoded stream, named here (xz, bzip2, LZMA-alone, lzip). */
  entryName?: string | undefined;
  lzip?: LzipIndex | undefined;
  /** The single entry's method, when the format's name does not say it all. */
  method?: string | undefined;
}

/** The name of a single stream's content: the container's name less these extensions. */
const streamExtensions: Partial<Record<SevenZipFormat, RegExp>> = {
  xz: /\.(xz|txz)$/i,
  bzip2: /\.(bz2|bzip2|tbz2?)$/i,
  lzma: /\.(lzma|tlz)$/i,
  lzip: /\.(lz|tlz)$/i,
};

/** Whether an ISO image holds a UDF file system (`NSR02`/`NSR03` in its volume recognition sequence). */
async function hasUdf(source: ContainerSource, signal: AbortSignal): Promise<boolean> {
  const sectors = Buffer.from(await readRange(source, 32 * 1024, 16 * 2048, signal));
  for (let offset = 0; offset + 6 <= sectors.length; offset += 2048) {
    const identifier = sectors.subarray(offset + 1, offset + 6).toString("latin1");
    if (identifier === "NSR02" || identifier === "NSR03") return true;
  }
  return false;
}

/** A bzip2 stream's start: `BZh`, the block size, then the first block's magic (byte-aligned). */
const bzip2StreamStart = /BZh[1-9]1AY&SY/g;

/**
 * Whether a bzip2 file holds more than one stream (what `bzip2 -d` and 7-Zip read in a row,
 * clamd only the first of): a second stream's header, looked for in chunks with an overlap.
 */
async function hasSecondBzip2Stream(
  source: ContainerSource,
  signal: AbortSignal,
): Promise<boolean> {
  let carried = "";
  let offset = 0;
  for await (const chunk of streamFrom(source, 0, signal)) {
    const text = carried + Buffer.from(chunk).toString("latin1");
    const textStart = offset - carried.length;
    for (const match of text.matchAll(bzip2StreamStart))
      if (textStart + match.index > 0) return true;
    offset += chunk.byteLength;
    carried = text.slice(-9);
  }
  return false;
}

async function planFor(
  source: ContainerSource,
  context: ExtractContext,
  format: SevenZipFormat,
  isoView?: "Iso" | "Udf",
): Promise<Plan> {
  const whole: InputSegment[] = [{ from: 0, length: source.size }];
  const extensions = streamExtensions[format];
  const entryName = extensions ? innerName(source, extensions) : undefined;
  switch (format) {
    case "rar": {
      const head = await readRange(source, 0, 8, context.signal);
      return { type: head[6] === 1 ? "Rar5" : "Rar", segments: whole };
    }
    case "iso":
      return {
        type: isoView ?? ((await hasUdf(source, context.signal)) ? "Udf" : "Iso"),
        segments: whole,
      };
    case "lzip": {
      const lzip = await indexLzip(source, context.signal);
      return { type: "lzma", segments: lzmaSegments(lzip), entryName, lzip };
    }
    case "7z":
      return { type: "7z", segments: whole };
    case "cab":
      return { type: "Cab", segments: whole };
    case "zip":
      return { type: "zip", segments: whole };
    case "bzip2": {
      const multiple = await hasSecondBzip2Stream(source, context.signal);
      return {
        type: format,
        segments: whole,
        entryName,
        method: multiple ? "bzip2 multi-stream" : "bzip2",
      };
    }
    default:
      return { type: format, segments: whole, entryName };
  }
}

function skipOf(outcome: Outcome): UnpackSkip {
  return new UnpackSkip(outcome.code, outcome.reason, outcome.limit);
}

/**
 * An entry's content as 7-Zip writes it. 7-Zip reports a failure after the bytes: a
 * failure with no bytes (or a bound) is thrown as the entry's skip; bytes that came out are
 * kept and the failure is reported after them (`after`).
 */
class EntryContent {
  #ended = false;
  #bytes = 0;
  /** A failure reported after content that was kept. */
  after: Outcome | undefined;

  constructor(
    private readonly run: SevenZipRun,
    private readonly entry: number,
  ) {}

  async *read(): AsyncGenerator<Uint8Array> {
    while (!this.#ended) {
      const event = await this.run.next();
      if (event.type === "chunk") {
        this.#bytes += event.bytes.byteLength;
        yield event.bytes;
      } else if (event.type === "end") {
        this.#ended = true;
        const { outcome } = event;
        if (!outcome) return;
        if (this.#bytes === 0 || outcome.code === "LIMITS") throw skipOf(outcome);
        this.after = outcome;
      } else throw new UnpackSkip("CORRUPT", `7-Zip's worker sent ${event.type} inside an entry`);
    }
  }

  /** After the reader is done: an entry it did not read to its end is stopped and passed over. */
  async finish(): Promise<void> {
    if (this.#ended) return;
    this.run.stop(this.entry);
    while (!this.#ended) {
      const event = await this.run.next();
      if (event.type === "end") this.#ended = true;
    }
  }
}

/** Listed problems that are not a corruption: data after the archive is read as its own member. */
const appendedData = /data after the end/i;

/**
 * The entries 7-Zip extracts from one listed container, in order, with the ones it does not
 * (encrypted, failed, past a bound) as skips where they stand.
 */
async function* extracted(
  run: SevenZipRun,
  listing: Listing,
  plan: Plan,
  source: ContainerSource,
  options: SevenZipEntriesOptions,
): AsyncGenerator<ExtractedEntry> {
  const pending: Array<{ index: number; name: string; outcome: Outcome }> = [];
  const selection: number[] = [];
  const nameOf = (entry: number) => plan.entryName ?? listing.entries[entry]?.path ?? "(archive)";
  for (const entry of listing.entries) {
    if (entry.directory || entry.link || (options.select && !options.select(entry))) continue;
    if (entry.encrypted)
      pending.push({
        index: entry.index,
        name: entry.path,
        outcome: {
          code: "ENCRYPTED",
          reason: `the entry is encrypted${entry.method ? ` (${entry.method})` : ""}; no password is tried`,
        },
      });
    else selection.push(entry.index);
  }
  const problems = listing.problems.filter((problem) => !appendedData.test(problem));
  if (problems.length > 0)
    pending.push({
      index: Number.MAX_SAFE_INTEGER,
      name: "(archive)",
      outcome: { code: "CORRUPT", reason: `7-Zip: ${problems.slice(0, 5).join("; ")}` },
    });
  const flush = function* (before: number): Generator<ExtractedEntry> {
    pending.sort((left, right) => left.index - right.index);
    while (pending[0] && pending[0].index < before) {
      const { name, outcome } = pending.shift() as (typeof pending)[number];
      yield { kind: "skipped", name, ...outcome };
    }
  };
  // (Nothing selected: the worker answers done at once, and is kept for another container.)
  run.extract(plan.entryName ? "all" : selection);
  const seen = new Set<number>();
  for (;;) {
    const event: WorkerEvent = await run.next();
    if (event.type === "begin") {
      yield* flush(event.entry);
      seen.add(event.entry);
      const listed = listing.entries[event.entry];
      const content = new EntryContent(run, event.entry);
      const name = plan.entryName ?? listed?.path ?? event.name;
      yield {
        kind: "file",
        name,
        compressedSize: plan.entryName ? source.size : listed?.packedSize,
        method: plan.entryName
          ? (plan.method ?? (plan.lzip ? "lzip" : plan.type))
          : methodName(listed?.method),
        open: () => content.read(),
      };
      await content.finish();
      if (content.after) yield { kind: "skipped", name, ...content.after };
    } else if (event.type === "failed") {
      seen.add(event.entry);
      pending.push({
        index: event.entry < 0 ? Number.MAX_SAFE_INTEGER : event.entry,
        name: nameOf(event.entry),
        outcome: event.outcome,
      });
    } else if (event.type === "trailing")
      pending.push({
        index: Number.MAX_SAFE_INTEGER,
        name: "(trailing data)",
        outcome: { code: "CORRUPT", reason: `${event.reason}: it is not looked into` },
      });
    else if (event.type === "unopened") throw skipOf(event.outcome);
    else if (event.type === "done") {
      for (const entry of selection)
        if (!seen.has(entry))
          pending.push({
            index: entry,
            name: nameOf(entry),
            outcome: event.outcome ?? {
              code: "CORRUPT",
              reason: "7-Zip listed it but did not extract it",
            },
          });
      yield* flush(Number.POSITIVE_INFINITY);
      return;
    }
  }
}

/**
 * The entries of a container as 7-Zip 24.09 (7z-wasm) extracts them, one at a time: `7z`,
 * `rar` (4 and 5), `iso` (the UDF view when there is one), `cab`, `xz`, `bzip2`, `lzma`
 * (LZMA-alone), `lzip` (read as LZMA-alone, each member's CRC-32 and size checked), and `zip`
 * for entries whose method zip.js lacks (LZMA, PPMd, bzip2, Deflate64, ...; pass `select` to
 * extract only those). 7-Zip runs in a worker thread, a fresh instance per container, its
 * memory bounded, terminated when `context.signal` fires; entries are listed first (`l -slt`):
 * directories and links are passed over, encrypted entries are `ENCRYPTED` skips (no password
 * is tried; encrypted headers make the whole container `ENCRYPTED`), and what 7-Zip reports
 * failing is `UNSUPPORTED` (a method it lacks), `ENCRYPTED` or `CORRUPT`. Content is streamed
 * as 7-Zip writes it, nothing written to disk, and 7-Zip is stopped at
 * `context.limits.maxMemberBytes` for an entry (`LIMITS`, then it goes on with the next) and
 * at `context.remainingBytes()` in all (`LIMITS` `maxTotalBytes`). Data after the archive's
 * end comes out as a hidden `(trailing data)` member. Throws `UnpackSkip` for a container it
 * cannot open (`ENCRYPTED`, `CORRUPT`).
 *
 * @example
 * // In the zip extractor: the entries zip.js cannot inflate, decoded by 7-Zip instead.
 * yield* sevenZipEntries(source, context, "zip", {
 *   select: (entry) => lacking.has(entry.path),
 * });
 */
export function sevenZipEntries(
  source: ContainerSource,
  context: ExtractContext,
  format: SevenZipFormat,
  options: SevenZipEntriesOptions = {},
): AsyncGenerator<ExtractedEntry> {
  const holder: { run?: SevenZipRun | undefined } = {};
  const entries = containerEntries(holder, source, context, format, options);
  abandoned.register(entries, holder, holder);
  return entries;
}

/**
 * Runs left behind by a reader that dropped their entries without finishing or returning
 * them: closed (the worker terminated) once the entries are garbage, so a worker is never
 * left waiting forever.
 */
const abandoned = new FinalizationRegistry<{ run?: SevenZipRun | undefined }>((holder) => {
  void holder.run?.close();
});

async function* containerEntries(
  holder: { run?: SevenZipRun | undefined },
  source: ContainerSource,
  context: ExtractContext,
  format: SevenZipFormat,
  options: SevenZipEntriesOptions,
): AsyncGenerator<ExtractedEntry> {
  const plan = await planFor(source, context, format, options.isoView);
  const { artifact } = source;
  const container =
    artifact.path !== undefined
      ? { path: artifact.path }
      : { bytes: new Uint8Array(await artifact.bytes({ signal: context.signal })) };
  const run = await SevenZipRun.start(
    {
      format,
      container,
      segments: plan.segments,
      type: plan.type,
      archiveName: "container",
      singleStream: plan.entryName !== undefined,
      lzipMembers: plan.lzip?.members.map(({ dataSize, crc32 }) => ({ dataSize, crc32 })),
      maxMemberBytes: context.limits.maxMemberBytes,
      heapLimitBytes: sevenZipHeapLimitBytes,
    },
    context,
  );
  holder.run = run;
  let end: number | undefined;
  try {
    const first = await run.next();
    if (first.type === "unopened") throw skipOf(first.outcome);
    if (first.type !== "listing")
      throw new UnpackSkip("CORRUPT", `7-Zip's worker sent ${first.type} before a listing`);
    end = plan.lzip ? plan.lzip.end : first.listing.physicalSize;
    yield* extracted(run, first.listing, plan, source, options);
  } finally {
    await run.close();
    abandoned.unregister(holder);
  }
  if (format !== "zip" && end !== undefined && end > 0 && end < source.size) {
    const start = end;
    yield {
      kind: "file",
      name: "(trailing data)",
      compressedSize: source.size - start,
      hidden: true,
      open: () => streamFrom(source, start, context.signal),
    };
  }
}

function sevenZipExtractor(format: Exclude<SevenZipFormat, "zip">): Extractor {
  return { format, entries: (source, context) => sevenZipEntries(source, context, format) };
}

/** 7z archives, with 7-Zip (see {@link sevenZipEntries}). */
export const sevenZipArchiveExtractor: Extractor = sevenZipExtractor("7z");
/** RAR 4 and 5, with 7-Zip's RAR decoder. */
export const rarExtractor: Extractor = sevenZipExtractor("rar");
/**
 * ISO 9660 images (Joliet, Rock Ridge, El Torito) with 7-Zip; a bridge image is read as both
 * of its file systems (Windows mounts the UDF view, other readers the ISO 9660 tree: a file
 * may be in one only), the members both show scanned once.
 */
export const isoExtractor: Extractor = {
  format: "iso",
  async *entries(source, context) {
    if (await hasUdf(source, context.signal))
      yield* sevenZipEntries(source, context, "iso", { isoView: "Udf" });
    yield* sevenZipEntries(source, context, "iso", { isoView: "Iso" });
  },
};
/** Microsoft cabinets (stored, MSZIP, LZX, Quantum), with 7-Zip. */
export const cabExtractor: Extractor = sevenZipExtractor("cab");
/** xz streams (all of them, one after another), with 7-Zip. */
export const xzExtractor: Extractor = sevenZipExtractor("xz");
/** bzip2 streams (all of them, one after another), with 7-Zip. */
export const bzip2Extractor: Extractor = sevenZipExtractor("bzip2");
/** LZMA-alone (`.lzma`) streams, with 7-Zip. */
export const lzmaExtractor: Extractor = sevenZipExtractor("lzma");
/** lzip streams, every member, read by 7-Zip as LZMA-alone and checked against their trailers. */
export const lzipExtractor: Extractor = sevenZipExtractor("lzip");
