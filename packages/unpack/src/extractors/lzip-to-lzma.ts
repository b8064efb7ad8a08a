import { crc32 } from "./crc32.js";
import { type ContainerSource, UnpackSkip } from "./extractor.js";
import type { InputSegment, LzipMemberCheck } from "./seven-zip-protocol.js";
import { readRange } from "./source-reading.js";

/**
 * lzip (lzip.nongnu.org), read as 7-Zip reads LZMA-alone: each member is `LZIP`, a version
 * byte (1), a coded dictionary size, a raw LZMA stream (lc=3, lp=0, pb=2) ending with an
 * end-of-stream marker, and a 20-byte trailer (CRC-32 of the data, data size, member size,
 * little-endian). Members follow one another; their contents join as one.
 */

/** Bytes of an lzip member header (`LZIP`, version, dictionary size). */
const headerBytes = 6;
/** Bytes of an lzip member trailer (CRC-32, data size, member size). */
const trailerBytes = 20;
/** The smallest member: header, the shortest LZMA stream (an end marker), trailer. */
const smallestMember = 36;
/** How far back from the end a last member is looked for, past trailing data. */
const trailingSearchBytes = 1024 * 1024;

/** One lzip member, where it is and what its trailer says. */
export interface LzipMember extends LzipMemberCheck {
  /** Offset of its `LZIP` header in the stream. */
  start: number;
  /** Its bytes, header and trailer included. */
  memberSize: number;
  /** The LZMA dictionary size its header codes, in bytes. */
  dictionarySize: number;
}

/** The members of an lzip stream, and where trailing data starts (none: the stream's size). */
export interface LzipIndex {
  members: LzipMember[];
  /** Offset of data after the last member (not lzip), or the stream's size. */
  end: number;
}

/**
 * The dictionary size an lzip header byte codes: 2^(bits 0-4) less (bits 5-7)/16 of it,
 * 4 KiB to 512 MiB; undefined when out of that range.
 */
export function lzipDictionarySize(coded: number): number | undefined {
  const base = 2 ** (coded & 0x1f);
  const size = base - (base / 16) * (coded >> 5);
  return size >= 4096 && size <= 512 * 1024 * 1024 ? size : undefined;
}

/**
 * An LZMA-alone (`.lzma`) header: lc=3 lp=0 pb=2, the dictionary, an unknown size (an end
 * marker ends the stream). 7-Zip takes only dictionaries of 2^n or 3 x 2^(n-1) bytes, so
 * lzip's (2^n less sixteenths) is rounded up to the next of those: a larger dictionary
 * decodes the same stream.
 */
export function lzmaAloneHeader(dictionarySize: number): Uint8Array {
  let accepted = 4096;
  while (accepted < dictionarySize)
    accepted = Number.isInteger(Math.log2(accepted)) ? (accepted / 2) * 3 : (accepted / 3) * 4;
  const header = Buffer.alloc(13, 0xff);
  header[0] = 0x5d;
  header.writeUInt32LE(accepted, 1);
  return header;
}

/** The member whose trailer ends at `end`, if that trailer and its header agree. */
async function memberEndingAt(
  source: ContainerSource,
  end: number,
  signal: AbortSignal,
  trailer?: Buffer,
): Promise<LzipMember | undefined> {
  if (end < smallestMember) return undefined;
  const bytes =
    trailer ?? Buffer.from(await readRange(source, end - trailerBytes, trailerBytes, signal));
  if (bytes.length < trailerBytes) return undefined;
  const memberSize = Number(bytes.readBigUInt64LE(12));
  const dataSize = Number(bytes.readBigUInt64LE(4));
  if (memberSize < smallestMember || memberSize > end || !Number.isSafeInteger(dataSize))
    return undefined;
  const start = end - memberSize;
  const header = Buffer.from(await readRange(source, start, headerBytes, signal));
  if (header.subarray(0, 4).toString("latin1") !== "LZIP") return undefined;
  if (header[4] !== 1)
    throw new UnpackSkip("UNSUPPORTED", `an lzip member of version ${header[4]} (only 1 is read)`);
  const dictionarySize = lzipDictionarySize(header[5] as number);
  if (dictionarySize === undefined) return undefined;
  return { start, memberSize, dataSize, crc32: bytes.readUInt32LE(0), dictionarySize };
}

/** Where the last member ends when data follows it: the last trailer (within 1 MiB) that checks out. */
async function lastMemberEnd(source: ContainerSource, signal: AbortSignal): Promise<number> {
  const from = Math.max(0, source.size - trailingSearchBytes);
  const tail = Buffer.from(await readRange(source, from, source.size - from, signal));
  for (let end = source.size - 1; end - from >= trailerBytes; end -= 1) {
    const trailer = tail.subarray(end - from - trailerBytes, end - from);
    const memberSize = trailer.readBigUInt64LE(12);
    if (memberSize < BigInt(smallestMember) || memberSize > BigInt(end)) continue;
    if (await memberEndingAt(source, end, signal, trailer)) return end;
  }
  return -1;
}

/**
 * The members of an lzip stream, found from its end backwards as lzip does (each trailer
 * gives its member's size); data after the last member is found within its last MiB. Throws
 * `UnpackSkip` `CORRUPT` when the members do not chain back to the start.
 */
export async function indexLzip(source: ContainerSource, signal: AbortSignal): Promise<LzipIndex> {
  let end = source.size;
  let last = await memberEndingAt(source, end, signal);
  if (!last) {
    end = await lastMemberEnd(source, signal);
    last = end > 0 ? await memberEndingAt(source, end, signal) : undefined;
  }
  if (!last)
    throw new UnpackSkip("CORRUPT", "no lzip member ends the stream (truncated or corrupt)");
  const members = [last];
  let start = last.start;
  while (start > 0) {
    const member = await memberEndingAt(source, start, signal);
    if (!member)
      throw new UnpackSkip(
        "CORRUPT",
        `the lzip member ending at offset ${start} has no valid trailer or header`,
      );
    members.unshift(member);
    start = member.start;
  }
  return { members, end };
}

/**
 * The file 7-Zip reads for an lzip stream: each member as an LZMA-alone stream (its header,
 * then the member's LZMA data in place); 7-Zip decodes LZMA-alone streams that follow one
 * another as one content.
 */
export function lzmaSegments(index: LzipIndex): InputSegment[] {
  return index.members.flatMap((member) => [
    { bytes: lzmaAloneHeader(member.dictionarySize) },
    { from: member.start + headerBytes, length: member.memberSize - headerBytes - trailerBytes },
  ]);
}

/**
 * Checks decoded lzip content member by member against the trailers (data size, CRC-32), as
 * it comes out: `update` and `finish` answer why it does not match, or undefined.
 */
export class LzipCheck {
  #member = 0;
  #done = 0;
  #crc = 0;

  constructor(private readonly members: readonly LzipMemberCheck[]) {}

  update(bytes: Uint8Array): string | undefined {
    let offset = 0;
    while (offset < bytes.length) {
      const mismatch = this.#passEmpty();
      if (mismatch) return mismatch;
      const member = this.members[this.#member];
      if (!member) return "the LZMA data decodes to more than the lzip trailers say";
      const take = Math.min(bytes.length - offset, member.dataSize - this.#done);
      this.#crc = crc32(bytes.subarray(offset, offset + take), this.#crc);
      this.#done += take;
      offset += take;
      if (this.#done === member.dataSize) {
        const ended = this.#end(member);
        if (ended) return ended;
      }
    }
    return undefined;
  }

  finish(): string | undefined {
    const mismatch = this.#passEmpty();
    if (mismatch) return mismatch;
    return this.#member < this.members.length
      ? `lzip member ${this.#member + 1} decodes to fewer bytes than its trailer says`
      : undefined;
  }

  /** Members of no data: their CRC-32 must be 0. */
  #passEmpty(): string | undefined {
    for (let member = this.members[this.#member]; member?.dataSize === 0; ) {
      const ended = this.#end(member);
      if (ended) return ended;
      member = this.members[this.#member];
    }
    return undefined;
  }

  #end(member: LzipMemberCheck): string | undefined {
    const index = this.#member;
    const crc = this.#crc;
    this.#member += 1;
    this.#done = 0;
    this.#crc = 0;
    return crc === member.crc32
      ? undefined
      : `lzip member ${index + 1}'s CRC-32 does not match its content`;
  }
}
