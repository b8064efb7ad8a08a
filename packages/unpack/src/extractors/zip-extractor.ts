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
  maximumAppendedBytes,
} from "./zip-central-directory.js";
import { surveyExtents } from "./zip-directory-survey.js";
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
  headerDisagreement,
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
 * Local headers outside the directory's entries, and data descriptor signatures, looked at in
 * the scan of a zip's bytes: 4 per member allowed (`maxMembers`), at least 10,000 of each.
 * Past that many local headers the scan stops (`LIMITS`); past that many data descriptor
 * signatures, the ones after are not read (an entry known by its local header only, whose
 * end only a data descriptor gives, is then `LIMITS`): a zip made of signatures costs a
 * bounded time.
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
  /**
   * Not shown (as it is) by a standard reader: outside the central directory, a local
   * header's view, or a directory entry whose local header disagrees with its record.
   */
  hidden: boolean;
  /** A central directory entry's own view: a method not decoded here goes to 7-Zip by its name. */
  listed: boolean;
  /**
   * The sizes the directory declares, for a directory entry's own view: when its data takes
   * another number of bytes (a deflate stream ending elsewhere) or decodes to another number
   * (a reader trusting the size stops early), readers disagree on it, and it is marked
   * `hidden` once read.
   */
  declared?: { compressedSize: number; size: number } | undefined;
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
  /**
   * The extents inside which a local header signature is not looked at: every entry's, but of
   * an entry whose local header and directory record give two views of different lengths,
   * only the shorter (a reader of that view goes on to the next header after it: 7-Zip
   * extracts a local header hidden in a stored entry's directory extent after the data its
   * local header declares).
   */
  private readonly covered: ByteRange[] = [];
  /** Where the extent recorded last ends. */
  private lastEnd = 0;
  /** The end records found while scanning the bytes (this zip's and others'). */
  private readonly endRecords: number[] = [];
  /** Signed data descriptors by where the data they end starts. */
  private readonly descriptorEnds = new Map<number, DescriptorEnd>();
  /** Directory entries whose method is not decoded here (by name), for 7-Zip. */
  private readonly lacking = new Map<string, { method: number; hidden: boolean }>();
  /** Where the scan stopped reading data descriptor signatures (too many), if it did. */
  private descriptorsCappedAt: number | undefined;

  constructor(
    private readonly source: ContainerSource,
    private readonly access: ZipSourceAccess,
    private readonly context: ExtractContext,
  ) {}

  async *entries(): AsyncGenerator<ExtractedEntry> {
    const extents = await surveyExtents(this.access, this.signatureLimit(), maximumAppendedBytes);
    const overlaps = countOverlaps(extents);
    if (overlaps > maximumOverlappingEntries) {
      yield* this.overlapBomb(overlaps, extents.length);
      return;
    }
    const listing = yield* this.listedEntries();
    yield* this.lackingEntries();
    const found = yield* this.unlistedLocalEntries(listing.place);
    if (listing.error === undefined && listing.place) {
      yield* this.unlistedBytes(listing.place);
      return;
    }
    const recovered = found > 0 ? `; ${found} entries were read from their local headers` : "";
    throw new UnpackSkip(
      "CORRUPT",
      `its central directory could not be read (${messageOf(listing.error)})${recovered}`,
    );
  }

  /** True when the container's first bytes are a zip signature (not a zip appended to others). */
  private async headAnnouncesZip(): Promise<boolean> {
    const head = Buffer.from(await this.access.read(0, 4));
    return head.length === 4 && zipHeads.includes(head.readUInt32LE(0));
  }

  /** Fifield's bomb: the container is not extracted (thrown when its head announces a zip). */
  private async *overlapBomb(overlaps: number, total: number): AsyncGenerator<ExtractedEntry> {
    const skip = overlapSkip(`${overlaps} of its ${total} entries overlap others`);
    if (await this.headAnnouncesZip()) throw skip;
    // Found by its end record only (appended to other bytes): a skipped entry proves it a zip.
    yield {
      kind: "skipped",
      name: "(overlapping entries)",
      code: skip.code,
      reason: skip.message,
      limit: skip.limit,
    };
  }

  /**
   * The central directory's entries, in its order; returns where the directory is, or why it
   * could not be read to its end.
   */
  private async *listedEntries(): AsyncGenerator<
    ExtractedEntry,
    { place: DirectoryPlace | undefined; error: unknown }
  > {
    const { signal } = this.context;
    const entries = centralDirectoryEntries(this.access, signal);
    try {
      for (;;) {
        let next: IteratorResult<Entry, DirectoryPlace | undefined>;
        try {
          next = await entries.next();
        } catch (error) {
          if (signal.aborted) throw error;
          return { place: undefined, error };
        }
        if (next.done)
          return next.value
            ? { place: next.value, error: undefined }
            : { place: undefined, error: new Error("no central directory") };
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
    // A local header disagreeing with its record: readers differ on what the entry is (ClamAV
    // reads the local header), so what comes out is `hidden` (scanned by every backend).
    const disagrees = headerDisagreement(header, entry) !== undefined;
    const methodDiffers = header.method !== method;
    const storedSizeDiffers =
      method === 0 &&
      header.compressedSize !== undefined &&
      header.compressedSize !== compressedSize;
    const twoViews = methodDiffers || storedSizeDiffers;
    const listed = yield* this.decoded(
      {
        name,
        method,
        header,
        compressedSize,
        hidden: disagrees,
        listed: true,
        declared: { compressedSize, size: entry.uncompressedSize },
        zipJsEntry,
      },
      !twoViews,
    );
    if (!twoViews) return;
    // Another reader (one that walks the local headers) would extract this instead.
    const local = yield* this.decoded(
      {
        name: `${name} (as its local header has it)`,
        method: header.method,
        header,
        compressedSize: header.compressedSize,
        hidden: true,
        listed: false,
      },
      false,
    );
    // Past the shorter view's end, a local header is one the reader of that view goes on to.
    this.covered.push(listed.end <= local.end ? listed : local);
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
        const hidden = this.lacking.get(entry.name)?.hidden === true;
        yield hidden && entry.kind === "file" ? { ...entry, hidden } : entry;
      }
    } catch (error) {
      if (this.context.signal.aborted) throw error;
      failure = `7-Zip could not read the zip: ${messageOf(error)}`;
    }
    for (const [name, { method }] of remaining)
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
    const limit = this.signatureLimit();
    const candidates = await this.scanSignatures(place, limit);
    // Found by an end record alone, with no directory to read: only headers whose data fits
    // are entries. A program that handles zips holds their signatures among its constants
    // (/usr/bin/osslsigncode: a "local header" declaring 2 GB), and no zip reader extracts it.
    const fitOnly = !place && !(await this.headAnnouncesZip());
    let skipUntil = 0;
    let found = 0;
    for (const offset of candidates) {
      await this.access.breathe();
      if (offset < skipUntil) continue;
      const header = await readLocalHeader(this.access, offset);
      if (!header) continue;
      if (fitOnly && header.dataStart + (header.compressedSize ?? 0) > this.access.size) continue;
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
   * this zip's directory (other zips'), and the data descriptors by the data they would end
   * (the first `limit` signatures: past them, `descriptorsCappedAt` says where it stopped).
   * The event loop turns every few ms and the signal is checked then.
   */
  private async scanSignatures(
    place: DirectoryPlace | undefined,
    limit: number,
  ): Promise<number[]> {
    const known = [...this.covered];
    if (place) known.push({ start: place.offset, end: place.offset + place.length });
    const covered = mergeRanges(known);
    const candidates: number[] = [];
    const types = [localHeaderType, endRecordType, descriptorType];
    let descriptors = 0;
    let looked = 0;
    for await (const batch of this.access.signatures(types))
      for (const [offset, type] of batch) {
        looked += 1;
        if (looked % signaturesBetweenLooks === 0) await this.access.breathe();
        if (type === endRecordType) {
          if (this.endRecords.length < maximumEndRecords) this.endRecords.push(offset);
        } else if (type === descriptorType) {
          if (descriptors < limit) {
            descriptors += 1;
            await recordDescriptor(this.access, offset, this.descriptorEnds);
          } else this.descriptorsCappedAt ??= offset;
        } else if (!isCovered(covered, offset)) {
          candidates.push(offset);
          if (candidates.length >= limit) return candidates;
        }
      }
    return candidates;
  }

  /** Local header signatures, and data descriptor signatures, looked at in one scan. */
  private signatureLimit(): number {
    return Math.max(10_000, signaturesPerMember * this.context.limits.maxMembers);
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
      // Past the cap, its descriptor may be one of those not read.
      const cappedAt = this.descriptorsCappedAt;
      if (cappedAt !== undefined)
        yield {
          kind: "skipped",
          name,
          code: "LIMITS",
          reason: `its local header has no size and its data descriptor was not looked for: more than ${this.signatureLimit()} data descriptor signatures, those from offset ${cappedAt} on were not read`,
          limit: "maxMembers",
        };
      else yield corrupt(name, "its local header has no size and no data descriptor ends its data");
      return;
    }
    yield* this.decoded({
      name,
      method: header.method,
      header,
      compressedSize,
      hidden: true,
      listed: false,
    });
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
   * decoded here is `UNSUPPORTED`. Records its extent (`covers`: as one local headers are not
   * looked for in) and returns it.
   *
   * A directory entry whose data takes, or decodes to, another number of bytes than its
   * record declares is marked `hidden` once its content was read: the walker reads `hidden`
   * after the content (it reads the content whole before it makes the member).
   */
  private async *decoded(
    data: EntryData,
    covers = true,
  ): AsyncGenerator<ExtractedEntry, ByteRange> {
    const { name, header, hidden, declared } = data;
    const outcome: ContentOutcome = {};
    const open = this.contentOf(data, outcome);
    if (!open) {
      const extent = await this.extentOf(header, data.compressedSize);
      this.record(extent, covers);
      // The directory's entries go to 7-Zip together, after the others, asked for by name (a
      // second entry of the same name, or a local header's view, cannot be asked for).
      if (data.listed && !this.lacking.has(name)) {
        this.lacking.set(name, { method: data.method, hidden });
        return extent;
      }
      yield {
        kind: "skipped",
        name,
        code: "UNSUPPORTED",
        reason: `${methodLabel(data.method)} is not decoded`,
      };
      return extent;
    }
    const available = this.access.size - header.dataStart;
    const file: Extract<ExtractedEntry, { kind: "file" }> = {
      kind: "file",
      name,
      method: compressionMethodNames.get(data.method),
      ...(hidden ? { hidden } : {}),
      compressedSize: Math.max(1, Math.min(data.compressedSize ?? available, available)),
      open:
        declared === undefined
          ? open
          : () =>
              counted(open(), (size) => {
                if (outcome.consumed !== declared.compressedSize || size !== declared.size)
                  file.hidden = true;
              }),
    };
    yield file;
    const extent = await this.extentOf(header, outcome.consumed ?? data.compressedSize);
    this.record(extent, covers);
    if (outcome.problem) yield corrupt(name, outcome.problem);
    return extent;
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

  /**
   * Records an entry's extent (for overlaps, unlisted bytes) and, when it `covers`, as one
   * whose local header signatures are not looked at.
   */
  private record(extent: ByteRange, covers = true): void {
    this.ledger.add(extent);
    if (covers) this.covered.push(extent);
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

/** Signatures looked at between two looks at the clock, in {@link ZipExtraction.scanSignatures}. */
const signaturesBetweenLooks = 1024;

/** `content`, then `done(bytes)` once it was read to its end. */
async function* counted(
  content: AsyncIterable<Uint8Array>,
  done: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  let bytes = 0;
  for await (const chunk of content) {
    bytes += chunk.byteLength;
    yield chunk;
  }
  done(bytes);
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
 * directory does not list (the first of concatenated zips: 7-Zip's view; in a stored entry's
 * directory extent past the data its local header declares), a local header's view where it
 * disagrees with its record, bytes nothing accounts for. A directory entry whose local header
 * disagrees with its record (name, flags, method, CRC, sizes), or whose data takes, or
 * decodes to, another number of bytes than the record declares, is `hidden` too: readers
 * differ on it (ClamAV reads the local header). At most `maxMembers` entries per zip. A
 * directory that cannot be read is `CORRUPT` (thrown), after the entries its local headers
 * give.
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
