import type { Entry, FileEntry } from "@zip.js/zip.js";
import {
  type ContainerSource,
  type ExtractContext,
  type ExtractedEntry,
  type Extractor,
  UnpackSkip,
} from "./extractor.js";
import { sevenZipEntries } from "./seven-zip-extractor.js";
import {
  centralDirectoryEntries,
  type DirectoryPlace,
  surveyDirectory,
} from "./zip-central-directory.js";
import {
  type ContentOutcome,
  inflatedContent,
  messageOf,
  storedContent,
  zipJsContent,
} from "./zip-entry-content.js";
import {
  type ByteRange,
  countOverlaps,
  ExtentLedger,
  isCovered,
  maximumOverlappingEntries,
  mergeRanges,
  uncoveredRanges,
} from "./zip-entry-ranges.js";
import {
  compressionMethodNames,
  type DescriptorEnd,
  descriptorLengthAt,
  descriptorType,
  directoryRegionEndingAt,
  encryptionLabel,
  endRecordEnd,
  endRecordType,
  flagDataDescriptor,
  type LocalHeader,
  localHeaderType,
  methodLabel,
  readLocalHeader,
  recordDescriptor,
} from "./zip-local-header.js";
import { ZipSourceAccess } from "./zip-source-access.js";

/** Stretches of a zip no structure accounts for shorter than this are not reported (bytes). */
const minimumUnlistedBytes = 32;

/** End records kept from the scan of a zip's bytes (each may mark another zip's directory). */
const maximumEndRecords = 256;

/**
 * Local headers outside the directory's entries, and data descriptors, kept from the scan of
 * a zip's bytes: 4 per member allowed (`maxMembers`), at least 10,000. Past that many local
 * headers the scan stops (`LIMITS`): a zip made of signatures costs a bounded time.
 */
const signaturesPerMember = 4;

/** The first bytes of a zip (a local header, an empty zip's end record, a spanned-zip marker). */
const zipHeads = [0x04034b50, 0x06054b50, 0x08074b50];

/** One entry's data to decode, from the central directory's view or a local header's. */
interface EntryData {
  name: string;
  method: number;
  header: LocalHeader;
  /** Bytes of compressed data, when known (deflate finds its own end). */
  compressedSize: number | undefined;
  /** Not shown by a standard reader: outside the central directory, or its local header's view. */
  hidden: boolean;
  /** The zip.js entry, for the methods zip.js decodes and node:zlib does not (deflate64). */
  zipJsEntry?: FileEntry | undefined;
}

/**
 * One zip being read: the central directory's entries (zip.js), then what other readers
 * would see and zip.js does not: local headers missing from the directory (the first of two
 * concatenated zips, an entry removed from the directory), a local header that disagrees with
 * its directory record, and bytes nothing accounts for (data between the entries and the
 * directory, before the first entry, after the end record).
 */
class ZipExtraction {
  /** Each entry read so far, local header to end of data (descriptor included). */
  private readonly ledger = new ExtentLedger();
  /** Where the extent recorded last ends. */
  private lastEnd = 0;
  /** The end records found while scanning the bytes (this zip's and others'). */
  private readonly endRecords: number[] = [];
  /** Signed data descriptors by where the data they end starts. */
  private readonly descriptorEnds = new Map<number, DescriptorEnd>();
  /** Directory entries whose method is not decoded here (name -> method), for 7-Zip. */
  private readonly lacking = new Map<string, number>();

  constructor(
    private readonly source: ContainerSource,
    private readonly access: ZipSourceAccess,
    private readonly context: ExtractContext,
  ) {}

  async *entries(): AsyncGenerator<ExtractedEntry> {
    const { signal } = this.context;
    const survey = await surveyDirectory(this.access, signal);
    const overlaps = countOverlaps(survey.ranges);
    if (overlaps > maximumOverlappingEntries) {
      yield* this.overlapBomb(overlaps, survey.ranges.length);
      return;
    }
    if (survey.ranges.length > 0) yield* this.listedEntries();
    yield* this.lackingEntries();
    const found = yield* this.unlistedLocalEntries(survey.place);
    if (survey.error === undefined && survey.place) {
      yield* this.unlistedBytes(survey.place);
      return;
    }
    const recovered = found > 0 ? `; ${found} entries were read from their local headers` : "";
    throw new UnpackSkip(
      "CORRUPT",
      `its central directory could not be read (${messageOf(survey.error)})${recovered}`,
    );
  }

  /** Fifield's bomb: the container is not extracted (thrown when its head announces a zip). */
  private async *overlapBomb(overlaps: number, total: number): AsyncGenerator<ExtractedEntry> {
    const skip = overlapSkip(`${overlaps} of its ${total} entries overlap others`);
    const head = Buffer.from(await this.access.read(0, 4));
    if (head.length === 4 && zipHeads.includes(head.readUInt32LE(0))) throw skip;
    // Found by its end record only (appended to other bytes): a skipped entry proves it a zip.
    yield {
      kind: "skipped",
      name: "(overlapping entries)",
      code: skip.code,
      reason: skip.message,
      limit: skip.limit,
    };
  }

  /** The central directory's entries, in its order (where it breaks, the survey said why). */
  private async *listedEntries(): AsyncGenerator<ExtractedEntry> {
    const { signal } = this.context;
    const entries = centralDirectoryEntries(this.access, signal);
    try {
      for (;;) {
        let next: IteratorResult<Entry, unknown>;
        try {
          next = await entries.next();
        } catch (error) {
          if (signal.aborted) throw error;
          return;
        }
        if (next.done) return;
        yield* this.listedEntry(next.value);
      }
    } finally {
      await entries.return(undefined).catch(() => undefined);
    }
  }

  /** One central directory entry, and its local header's view when that disagrees. */
  private async *listedEntry(entry: Entry): AsyncGenerator<ExtractedEntry> {
    const name = entry.filename;
    const header = await readLocalHeader(this.access, entry.offset);
    if (!header) {
      yield corrupt(name, `no local header at offset ${entry.offset}, where the directory points`);
      return;
    }
    this.ledger.checkStart(header.offset);
    if (this.ledger.overlaps > maximumOverlappingEntries)
      throw overlapSkip(`${this.ledger.overlaps} entries start inside others as they decode`);
    const { compressedSize, compressionMethod: method } = entry;
    if (entry.encrypted || header.encrypted) {
      this.record(await this.extentOf(header, compressedSize));
      // The local header keeps the method number (99 for AES) that zip.js replaces by the inner one.
      yield encrypted(name, header.flags | (entry.rawBitFlag ?? 0), header.method);
      return;
    }
    if (entry.directory && compressedSize === 0) {
      this.record(await this.extentOf(header, 0));
      return;
    }
    const zipJsEntry = entry.directory ? undefined : entry;
    yield* this.decoded({ name, method, header, compressedSize, hidden: false, zipJsEntry });
    const methodDiffers = header.method !== method;
    const storedSizeDiffers =
      method === 0 &&
      header.compressedSize !== undefined &&
      header.compressedSize !== compressedSize;
    if (methodDiffers || storedSizeDiffers) {
      // Another reader (one that walks the local headers) would extract this instead.
      yield* this.decoded({
        name: `${name} (as its local header has it)`,
        method: header.method,
        header,
        compressedSize: header.compressedSize,
        hidden: true,
      });
    }
  }

  /**
   * The directory entries whose method zip.js and node:zlib lack (LZMA, PPMd, bzip2, xz,
   * zstd, implode, ...), decoded by 7-Zip (one run for all of them); those it does not
   * extract are `UNSUPPORTED`.
   */
  private async *lackingEntries(): AsyncGenerator<ExtractedEntry> {
    if (this.lacking.size === 0) return;
    const remaining = new Map(this.lacking);
    let failure = "7-Zip did not extract it";
    try {
      const select = (listed: { path: string }) => remaining.has(listed.path);
      for await (const entry of sevenZipEntries(this.source, this.context, "zip", { select })) {
        remaining.delete(entry.name);
        yield entry;
      }
    } catch (error) {
      if (this.context.signal.aborted) throw error;
      failure = `7-Zip could not read the zip: ${messageOf(error)}`;
    }
    for (const [name, method] of remaining)
      yield {
        kind: "skipped",
        name,
        code: "UNSUPPORTED",
        reason: `${methodLabel(method)} is not decoded (${failure})`,
      };
  }

  /**
   * The local headers the central directory does not list, in file order (7-Zip's view of
   * the first of two concatenated zips, an entry cut out of the directory), found by scanning
   * the bytes once outside the entries already read. Returns how many were found.
   */
  private async *unlistedLocalEntries(
    place: DirectoryPlace | undefined,
  ): AsyncGenerator<ExtractedEntry, number> {
    const limit = Math.max(10_000, signaturesPerMember * this.context.limits.maxMembers);
    const candidates = await this.scanSignatures(place, limit);
    let skipUntil = 0;
    let found = 0;
    for (const offset of candidates) {
      if (offset < skipUntil) continue;
      const header = await readLocalHeader(this.access, offset);
      if (!header) continue;
      found += 1;
      this.lastEnd = header.dataStart;
      yield* this.unlistedEntry(header);
      skipUntil = Math.max(skipUntil, this.lastEnd);
    }
    if (candidates.length >= limit)
      yield {
        kind: "skipped",
        name: "(local headers)",
        code: "LIMITS",
        reason: `more than ${limit} local header signatures outside the directory: the bytes after them are not looked at`,
        limit: "maxMembers",
      };
    return found;
  }

  /**
   * One pass over the bytes: the local headers outside the entries read and the directory
   * (candidates, in order, at most `limit`: the pass stops there), the end records before
   * this zip's directory (other zips'), and the data descriptors by the data they would end.
   */
  private async scanSignatures(
    place: DirectoryPlace | undefined,
    limit: number,
  ): Promise<number[]> {
    const known = [...this.ledger.extents];
    if (place) known.push({ start: place.offset, end: place.offset + place.length });
    const covered = mergeRanges(known);
    const candidates: number[] = [];
    const types = [localHeaderType, endRecordType, descriptorType];
    for await (const batch of this.access.signatures(types))
      for (const [offset, type] of batch) {
        if (type === endRecordType) {
          if (this.endRecords.length < maximumEndRecords) this.endRecords.push(offset);
        } else if (type === descriptorType) {
          if (this.descriptorEnds.size < limit)
            await recordDescriptor(this.access, offset, this.descriptorEnds);
        } else if (!isCovered(covered, offset)) {
          candidates.push(offset);
          if (candidates.length >= limit) return candidates;
        }
      }
    return candidates;
  }

  /** An entry known only by its local header. */
  private async *unlistedEntry(header: LocalHeader): AsyncGenerator<ExtractedEntry> {
    const name = `${header.name} (not in the central directory)`;
    let { compressedSize } = header;
    if (compressedSize === undefined && header.method !== 8)
      compressedSize = this.descriptorEnds.get(header.dataStart)?.compressedSize;
    if (header.encrypted) {
      this.record(await this.extentOf(header, compressedSize));
      yield encrypted(name, header.flags, header.method);
      return;
    }
    if (compressedSize === undefined && header.method !== 8) {
      this.record(await this.extentOf(header, undefined));
      yield corrupt(name, "its local header has no size and no data descriptor ends its data");
      return;
    }
    yield* this.decoded({ name, method: header.method, header, compressedSize, hidden: true });
  }

  /**
   * The bytes no entry, directory or end record accounts for, each stretch as an entry: data
   * smuggled between the entries and the directory, a stub before the first entry, data after
   * the end record. (Another zip's directory, before this one, is accounted for.)
   */
  private async *unlistedBytes(place: DirectoryPlace): AsyncGenerator<ExtractedEntry> {
    const regions = [...this.ledger.extents];
    // This zip's end record: the first after its directory (zip64 records come between).
    const after = this.access.signatures([endRecordType], place.offset + place.length);
    const own = (await after.next()).value?.[0]?.[0];
    await after.return(undefined);
    const ownEnd = own === undefined ? this.access.size : await endRecordEnd(this.access, own);
    regions.push({ start: place.offset, end: ownEnd });
    for (const offset of this.endRecords) {
      if (offset >= place.offset) continue;
      const other = await directoryRegionEndingAt(this.access, offset);
      if (other) regions.push(other);
    }
    for (const { start, end } of uncoveredRanges(regions, this.access.size, minimumUnlistedBytes)) {
      yield {
        kind: "file",
        name: `(unlisted bytes ${start}-${end})`,
        compressedSize: end - start,
        hidden: true,
        open: () => this.access.chunks(start, end),
      };
    }
  }

  /**
   * An entry's content, decoded as it is read (stored and deflate by node:zlib, whatever size
   * it declares; deflate64 by zip.js), then `CORRUPT` if it stopped short; a method not
   * decoded here is `UNSUPPORTED`.
   */
  private async *decoded(data: EntryData): AsyncGenerator<ExtractedEntry> {
    const { name, header, hidden } = data;
    const outcome: ContentOutcome = {};
    const open = this.contentOf(data, outcome);
    if (!open) {
      this.record(await this.extentOf(header, data.compressedSize));
      // The directory's entries go to 7-Zip together, after the others, asked for by name (a
      // second entry of the same name, or a local header's view, cannot be asked for).
      if (!hidden && !this.lacking.has(name)) {
        this.lacking.set(name, data.method);
        return;
      }
      yield {
        kind: "skipped",
        name,
        code: "UNSUPPORTED",
        reason: `${methodLabel(data.method)} is not decoded`,
      };
      return;
    }
    const available = this.access.size - header.dataStart;
    yield {
      kind: "file",
      name,
      method: compressionMethodNames.get(data.method),
      ...(hidden ? { hidden } : {}),
      compressedSize: Math.max(1, Math.min(data.compressedSize ?? available, available)),
      open,
    };
    this.record(await this.extentOf(header, outcome.consumed ?? data.compressedSize));
    if (outcome.problem) yield corrupt(name, outcome.problem);
  }

  /** How to read an entry's content, or undefined for a method not decoded here. */
  private contentOf(
    data: EntryData,
    outcome: ContentOutcome,
  ): (() => AsyncIterable<Uint8Array>) | undefined {
    const { method, header, compressedSize, zipJsEntry } = data;
    const { signal } = this.context;
    if (method === 0 && compressedSize !== undefined)
      return () => storedContent(this.access, header.dataStart, compressedSize, outcome);
    if (method === 8) return () => inflatedContent(this.access, header.dataStart, outcome, signal);
    if (method === 9 && zipJsEntry) return () => zipJsContent(zipJsEntry, outcome, signal);
    return undefined;
  }

  /** Records an entry's extent (for overlaps, local headers inside it, unlisted bytes). */
  private record(extent: ByteRange): void {
    this.ledger.add(extent);
    this.lastEnd = extent.end;
  }

  /** An entry's extent: its local header to the end of its data and data descriptor. */
  private async extentOf(
    header: LocalHeader,
    compressedSize: number | undefined,
  ): Promise<ByteRange> {
    if (compressedSize === undefined) return { start: header.offset, end: header.dataStart };
    const dataEnd = header.dataStart + compressedSize;
    const descriptor =
      header.flags & flagDataDescriptor
        ? await descriptorLengthAt(this.access, dataEnd, compressedSize)
        : 0;
    return { start: header.offset, end: Math.min(this.access.size, dataEnd + descriptor) };
  }
}

/** The `LIMITS` skip of a zip bomb of overlapping entries. */
function overlapSkip(found: string): UnpackSkip {
  return new UnpackSkip(
    "LIMITS",
    `${found} (more than ${maximumOverlappingEntries}): a zip bomb of overlapping entries (Fifield), not extracted`,
    "overlappingEntries",
  );
}

function corrupt(name: string, reason: string): ExtractedEntry {
  return { kind: "skipped", name, code: "CORRUPT", reason };
}

function encrypted(name: string, flags: number, method: number): ExtractedEntry {
  return {
    kind: "skipped",
    name,
    code: "ENCRYPTED",
    reason: `encrypted (${encryptionLabel(flags, method)}): not decrypted, no password is tried`,
  };
}

/**
 * The zip family (zip, JAR, APK, OOXML, ...). The central directory is read by zip.js
 * (zip64, prepended data, name encodings, ZipCrypto and AES flagged); each entry is decoded
 * from its local header as it is read, stored and deflate by node:zlib whatever sizes it
 * declares (nothing is allocated from a declared size; the store counts the bytes), deflate64
 * by zip.js, other methods (LZMA, PPMd, bzip2, ...) by 7-Zip after the others; an encrypted
 * entry is `ENCRYPTED` (no password is tried), a method neither decodes `UNSUPPORTED`. More
 * than 5 entries overlapping others (Fifield's bomb, ClamAV's heuristic and 2-byte
 * tolerance) is `LIMITS` (`overlappingEntries`) for the whole zip: found in the directory,
 * nothing is extracted; found as entries decode (a directory hiding it), extraction stops.
 * What a standard reader hides comes out too, marked `hidden`: local headers the
 * directory does not list (the first of concatenated zips: 7-Zip's view), a local header
 * disagreeing with its record, bytes nothing accounts for. At most `maxMembers` entries per
 * zip. A directory that cannot be read is `CORRUPT` (thrown), after the entries its local
 * headers give.
 */
export const zipExtractor: Extractor = {
  format: "zip",
  async *entries(source, context): AsyncGenerator<ExtractedEntry> {
    const access = await ZipSourceAccess.open(source, context.signal);
    try {
      const { maxMembers } = context.limits;
      let count = 0;
      for await (const entry of new ZipExtraction(source, access, context).entries()) {
        if (count >= maxMembers) {
          yield {
            kind: "skipped",
            name: entry.name,
            code: "LIMITS",
            reason: `more than maxMembers (${maxMembers}) entries in one zip`,
            limit: "maxMembers",
          };
          return;
        }
        count += 1;
        yield entry;
      }
    } finally {
      await access.close();
    }
  },
};
