import type { ByteRange } from "./zip-entry-ranges.js";
import { centralRecordSignature, localHeaderLength } from "./zip-local-header.js";
import type { ZipSourceAccess } from "./zip-source-access.js";

const endRecordSignature = 0x06054b50;
const zip64EndRecordSignature = 0x06064b50;
const zip64LocatorSignature = 0x07064b50;
const endRecordLength = 22;
const zip64EndRecordLength = 56;
const zip64LocatorLength = 20;
const centralRecordLength = 46;
const maximumCommentLength = 0xffff;
/** End record candidates tried, last first (zip.js tries as many). */
const maximumEndProbes = 64;
/** Directory bytes read at a time. */
const chunkBytes = 1024 * 1024;
/** Records read between two checks of the clock and the signal. */
const recordsBetweenTurns = 256;

/** Where a central directory is, as its end record (zip64 too) and prepended data place it. */
interface DirectoryFound {
  /** Offset of its first record in the source. */
  start: number;
  /** Its length in bytes, as the end record declares it (cut at the end of the source). */
  length: number;
  /** Bytes before the zip (a stub, another zip): added to every local header offset. */
  prepended: number;
}

const uint64 = (view: DataView, offset: number) => Number(view.getBigUint64(offset, true));
const viewOf = (bytes: Uint8Array) =>
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

async function signatureAt(access: ZipSourceAccess, offset: number): Promise<number | undefined> {
  if (offset < 0 || offset + 4 > access.size) return undefined;
  const bytes = await access.read(offset, 4);
  return bytes.length === 4 ? viewOf(bytes).getUint32(0, true) : undefined;
}

/** The zip64 end record's directory length and offset, and where that record is. */
async function zip64Directory(
  access: ZipSourceAccess,
  endOffset: number,
): Promise<{ length: number; offset: number; recordOffset: number } | undefined> {
  const locatorOffset = endOffset - zip64LocatorLength;
  if ((await signatureAt(access, locatorOffset)) !== zip64LocatorSignature) return undefined;
  const locator = viewOf(await access.read(locatorOffset, zip64LocatorLength));
  // Where the locator says, or just before it (data prepended to the zip moves it there).
  for (const recordOffset of [uint64(locator, 8), locatorOffset - zip64EndRecordLength]) {
    if ((await signatureAt(access, recordOffset)) !== zip64EndRecordSignature) continue;
    const record = viewOf(await access.read(recordOffset, zip64EndRecordLength));
    if (record.byteLength < zip64EndRecordLength) continue;
    return { length: uint64(record, 40), offset: uint64(record, 48), recordOffset };
  }
  return undefined;
}

/** The directory the end record at `endOffset` points at (prepended data accounted for). */
async function directoryOf(
  access: ZipSourceAccess,
  endOffset: number,
  end: DataView,
): Promise<DirectoryFound | undefined> {
  let length = end.getUint32(12, true);
  let offset = end.getUint32(16, true);
  let recordOffset = endOffset;
  if (offset === 0xffffffff || length === 0xffffffff || end.getUint16(10, true) === 0xffff) {
    const zip64 = await zip64Directory(access, endOffset);
    if (zip64) ({ length, offset, recordOffset } = zip64);
  }
  if (length === 0) return { start: recordOffset, length: 0, prepended: 0 };
  if ((await signatureAt(access, offset)) === centralRecordSignature)
    return { start: offset, length, prepended: 0 };
  const moved = recordOffset - length;
  if ((await signatureAt(access, moved)) === centralRecordSignature)
    return { start: moved, length, prepended: moved - offset };
  return undefined;
}

/**
 * The central directory the last end record (of at most {@link maximumEndProbes}) that fits
 * in the source, has at most `appendedBytes` after it and points at a directory declares.
 */
async function findDirectory(
  access: ZipSourceAccess,
  appendedBytes: number,
): Promise<DirectoryFound | undefined> {
  // Shorter than an end record: nothing to find (a negative search offset would count from
  // the end and find a signature with too few bytes after it).
  if (access.size < endRecordLength) return undefined;
  const tailStart = Math.max(
    0,
    access.size - endRecordLength - maximumCommentLength - appendedBytes,
  );
  const tail = Buffer.from(await access.read(tailStart, access.size - tailStart));
  const signature = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
  let position = tail.lastIndexOf(signature, tail.length - endRecordLength);
  for (let probe = 0; position >= 0 && probe < maximumEndProbes; probe += 1) {
    const record = viewOf(tail.subarray(position, position + endRecordLength));
    const recordEnd = position + endRecordLength + record.getUint16(20, true);
    const fits = recordEnd <= tail.length && tail.length - recordEnd <= appendedBytes;
    if (record.getUint32(0, true) === endRecordSignature && fits) {
      const found = await directoryOf(access, tailStart + position, record);
      if (found) return found;
    }
    position = position > 0 ? tail.lastIndexOf(signature, position - 1) : -1;
  }
  return undefined;
}

/** A record's compressed size and local header offset, its zip64 extra field read where needed. */
function recordExtent(record: DataView, extra: DataView): { compressed: number; offset: number } {
  let compressed = record.getUint32(20, true);
  let offset = record.getUint32(42, true);
  const size = record.getUint32(24, true);
  if (compressed !== 0xffffffff && offset !== 0xffffffff) return { compressed, offset };
  for (let at = 0; at + 4 <= extra.byteLength; ) {
    const id = extra.getUint16(at, true);
    const length = extra.getUint16(at + 2, true);
    if (id === 0x0001) {
      let field = at + 4;
      const take = () => {
        const value =
          field + 8 <= at + 4 + length && field + 8 <= extra.byteLength
            ? uint64(extra, field)
            : undefined;
        field += 8;
        return value;
      };
      if (size === 0xffffffff) take();
      if (compressed === 0xffffffff) compressed = take() ?? compressed;
      if (offset === 0xffffffff) offset = take() ?? offset;
      break;
    }
    at += 4 + length;
  }
  return { compressed, offset };
}

/**
 * Each central directory entry's extent (its local header offset to the end of its compressed
 * data, taking the local header's name to be the record's), read straight from the records
 * without decoding names or building entries: the overlap check before anything is extracted.
 * A first look only: a directory it cannot find or that breaks gives the ranges read so far
 * (the listing that follows finds what is wrong, and checks overlaps again as entries decode).
 * Reads at most `maximumRecords` records and gives the event loop a turn while it reads.
 *
 * @param appendedBytes Data after the end record still accepted (zip.js's own setting).
 */
export async function surveyExtents(
  access: ZipSourceAccess,
  maximumRecords: number,
  appendedBytes: number,
): Promise<ByteRange[]> {
  const directory = await findDirectory(access, appendedBytes);
  const ranges: ByteRange[] = [];
  if (!directory) return ranges;
  const end = Math.min(access.size, directory.start + directory.length);
  let chunk: Uint8Array = new Uint8Array(0);
  let chunkStart = directory.start;
  for (
    let at = directory.start;
    at + centralRecordLength <= end && ranges.length < maximumRecords;
  ) {
    if (at + centralRecordLength > chunkStart + chunk.length) {
      chunk = await access.read(at, Math.min(chunkBytes, end - at));
      chunkStart = at;
    }
    const record = viewOf(chunk.subarray(at - chunkStart, at - chunkStart + centralRecordLength));
    if (record.getUint32(0, true) !== centralRecordSignature) break;
    const nameLength = record.getUint16(28, true);
    const extraLength = record.getUint16(30, true);
    const recordLength =
      centralRecordLength + nameLength + extraLength + record.getUint16(32, true);
    if (at + recordLength > end) break;
    if (at + recordLength > chunkStart + chunk.length) {
      chunk = await access.read(at, Math.min(Math.max(chunkBytes, recordLength), end - at));
      chunkStart = at;
    }
    const extraStart = at - chunkStart + centralRecordLength + nameLength;
    const extent = recordExtent(
      viewOf(chunk.subarray(at - chunkStart, at - chunkStart + centralRecordLength)),
      viewOf(chunk.subarray(extraStart, extraStart + extraLength)),
    );
    const start = extent.offset + directory.prepended;
    ranges.push({ start, end: start + localHeaderLength + nameLength + extent.compressed });
    at += recordLength;
    if (ranges.length % recordsBetweenTurns === 0) await access.breathe();
  }
  return ranges;
}
