import type { ZipSourceAccess } from "./zip-source-access.js";

/** The two bytes after `PK` of a local file header (`PK\x03\x04`), for {@link ZipSourceAccess.signatures}. */
export const localHeaderType = 0x0403;
/** The two bytes after `PK` of an end-of-central-directory record (`PK\x05\x06`). */
export const endRecordType = 0x0605;
/** The two bytes after `PK` of a signed data descriptor (`PK\x07\x08`). */
export const descriptorType = 0x0807;
/** `PK\x01\x02`: a central directory record. */
export const centralRecordSignature = 0x02014b50;
/** `PK\x07\x08`: a data descriptor (optional signature). */
const descriptorSignature = 0x08074b50;

/** Fixed part of a local file header, in bytes. */
export const localHeaderLength = 30;

/** Bit 0 of the general purpose flags: encrypted (ZipCrypto, or AES with method 99). */
const flagEncrypted = 0x0001;
/** Bit 3: sizes and CRC follow the data in a data descriptor. */
export const flagDataDescriptor = 0x0008;
/** Bit 6: PKWARE strong encryption. */
const flagStrongEncryption = 0x0040;
/** Bit 11: the name is UTF-8. */
export const flagUtf8 = 0x0800;

/**
 * The compression methods of APPNOTE 4.4.5 by number, named as members report them
 * (`UnpackedMember.method`); a header with any other number is taken for noise.
 */
export const compressionMethodNames: ReadonlyMap<number, string> = new Map([
  [0, "stored"],
  [1, "shrunk"],
  [2, "reduced"],
  [3, "reduced"],
  [4, "reduced"],
  [5, "reduced"],
  [6, "imploded"],
  [8, "deflate"],
  [9, "deflate64"],
  [10, "dcl-imploded"],
  [12, "bzip2"],
  [14, "lzma"],
  [16, "cmpsc"],
  [18, "terse"],
  [19, "lz77"],
  [20, "zstd"],
  [93, "zstd"],
  [94, "mp3"],
  [95, "xz"],
  [96, "jpeg"],
  [97, "wavpack"],
  [98, "ppmd"],
  [99, "aes"],
]);

/** `method N (name)` for messages. */
export function methodLabel(method: number): string {
  const name = compressionMethodNames.get(method);
  return name ? `method ${method} (${name})` : `method ${method}`;
}

/** A local file header, as it is on disk (it may disagree with the central directory). */
export interface LocalHeader {
  /** Where the header starts. */
  offset: number;
  flags: number;
  method: number;
  crc32: number;
  /** Its compressed size, or undefined when only a data descriptor after the data has it. */
  compressedSize: number | undefined;
  /** Its declared uncompressed size (never trusted: bytes are counted as they come out). */
  uncompressedSize: number;
  /** Its name, decoded (UTF-8 when flagged or valid, else code page 437): data, never a path. */
  name: string;
  /** Its name as it is on disk (compared with the directory's). */
  rawName: Uint8Array;
  /** Where its data starts (after the name and the extra field). */
  dataStart: number;
  /** Encrypted: ZipCrypto, AES or strong encryption. */
  encrypted: boolean;
  /** True when a zip64 extra field carries its sizes (its data descriptor has 8-byte sizes). */
  zip64: boolean;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Code page 437 (the zip default) above ASCII, 0x80 to 0xFF. */
const codePage437High =
  "\xc7\xfc\xe9\xe2\xe4\xe0\xe5\xe7\xea\xeb\xe8\xef\xee\xec\xc4\xc5\xc9\xe6\xc6\xf4\xf6\xf2\xfb\xf9\xff\xd6\xdc\xa2\xa3\xa5\u20a7\u0192\xe1\xed\xf3\xfa\xf1\xd1\xaa\xba\xbf\u2310\xac\xbd\xbc\xa1\xab\xbb\u2591\u2592\u2593\u2502\u2524\u2561\u2562\u2556\u2555\u2563\u2551\u2557\u255d\u255c\u255b\u2510\u2514\u2534\u252c\u251c\u2500\u253c\u255e\u255f\u255a\u2554\u2569\u2566\u2560\u2550\u256c\u2567\u2568\u2564\u2565\u2559\u2558\u2552\u2553\u256b\u256a\u2518\u250c\u2588\u2584\u258c\u2590\u2580\u03b1\xdf\u0393\u03c0\u03a3\u03c3\xb5\u03c4\u03a6\u0398\u03a9\u03b4\u221e\u03c6\u03b5\u2229\u2261\xb1\u2265\u2264\u2320\u2321\xf7\u2248\xb0\u2219\xb7\u221a\u207f\xb2\u25a0\xa0";

/**
 * Bytes as code page 437, ASCII kept as it is: control characters stay control characters
 * (escaped when the name is shown), rather than DOS's glyphs for them, which would hide them.
 */
export function decodeCodePage437(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes)
    text += byte < 0x80 ? String.fromCharCode(byte) : (codePage437High[byte - 0x80] as string);
  return text;
}

/** A zip entry name: UTF-8 when flagged or valid, code page 437 otherwise (names are data). */
export function decodeName(bytes: Uint8Array, flags: number): string {
  if (flags & flagUtf8) return Buffer.from(bytes).toString("utf8");
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return decodeCodePage437(bytes);
  }
}

/** The encryption of an entry, for messages, from its flags and method. */
export function encryptionLabel(flags: number, method: number): string {
  if (flags & flagStrongEncryption) return "PKWARE strong encryption";
  return method === 99 ? "AES" : "ZipCrypto";
}

/** True when general purpose `flags` say the entry is encrypted. */
export function isEncrypted(flags: number): boolean {
  return (flags & flagEncrypted) !== 0;
}

const view = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * The local file header at `offset`, or undefined when there is none (no signature, cut short,
 * a method no zip writer uses: noise that happens to hold `PK\x03\x04`).
 */
export async function readLocalHeader(
  access: ZipSourceAccess,
  offset: number,
): Promise<LocalHeader | undefined> {
  const fixed = view(await access.read(offset, localHeaderLength));
  if (fixed.length < localHeaderLength || fixed.readUInt32LE(0) !== 0x04034b50) return undefined;
  const flags = fixed.readUInt16LE(6);
  const method = fixed.readUInt16LE(8);
  if (!compressionMethodNames.has(method)) return undefined;
  const nameLength = fixed.readUInt16LE(26);
  const extraLength = fixed.readUInt16LE(28);
  const dataStart = offset + localHeaderLength + nameLength + extraLength;
  if (dataStart > access.size) return undefined;
  const variable = view(await access.read(offset + localHeaderLength, nameLength + extraLength));
  let compressedSize: number | undefined = fixed.readUInt32LE(18);
  let uncompressedSize = fixed.readUInt32LE(22);
  const zip64 = zip64Sizes(variable.subarray(nameLength), compressedSize, uncompressedSize);
  if (zip64) ({ compressedSize, uncompressedSize } = zip64);
  if (compressedSize === 0xffffffff) compressedSize = undefined;
  if ((flags & flagDataDescriptor) !== 0 && compressedSize === 0) compressedSize = undefined;
  return {
    offset,
    flags,
    method,
    crc32: fixed.readUInt32LE(14),
    compressedSize,
    uncompressedSize,
    name: decodeName(variable.subarray(0, nameLength), flags),
    rawName: variable.subarray(0, nameLength),
    dataStart,
    encrypted: isEncrypted(flags),
    zip64: zip64 !== undefined,
  };
}

/** What a central directory record declares of its entry (zip.js's `Entry` has these fields). */
export interface DirectoryRecord {
  rawFilename: Uint8Array;
  rawBitFlag?: number | undefined;
  compressionMethod: number;
  crc32?: number | undefined;
  compressedSize: number;
  uncompressedSize: number;
}

/**
 * The first field in which a local header disagrees with its central directory record (name,
 * flags, method, CRC-32, sizes), or undefined when they agree. Readers differ in which of the
 * two they trust (Python's zipfile and 7-Zip the directory, streaming readers and ClamAV the
 * local header), so an entry whose two disagree may show each reader something else. A local
 * header with a data descriptor (flag bit 3) may leave its CRC and sizes zero: not a
 * disagreement.
 */
export function headerDisagreement(
  header: LocalHeader,
  record: DirectoryRecord,
): string | undefined {
  const deferred = (header.flags & flagDataDescriptor) !== 0;
  const given = (value: number | undefined): value is number =>
    value !== undefined && !(deferred && value === 0);
  if (Buffer.compare(header.rawName, record.rawFilename) !== 0) return "name";
  if (record.rawBitFlag !== undefined && header.flags !== record.rawBitFlag) return "flags";
  if (header.method !== record.compressionMethod) return "method";
  if (given(header.crc32) && record.crc32 !== undefined && header.crc32 !== record.crc32)
    return "CRC-32";
  if (given(header.compressedSize) && header.compressedSize !== record.compressedSize)
    return "compressed size";
  if (given(header.uncompressedSize) && header.uncompressedSize !== record.uncompressedSize)
    return "size";
  return undefined;
}

/** The sizes of a zip64 extra field (0x0001) for the 32-bit fields set to 0xFFFFFFFF. */
function zip64Sizes(
  extra: Buffer,
  compressedSize: number,
  uncompressedSize: number,
): { compressedSize: number; uncompressedSize: number } | undefined {
  for (let position = 0; position + 4 <= extra.length; ) {
    const type = extra.readUInt16LE(position);
    const length = extra.readUInt16LE(position + 2);
    const body = extra.subarray(position + 4, position + 4 + length);
    position += 4 + length;
    if (type !== 0x0001) continue;
    let at = 0;
    const next = (declared: number): number => {
      if (declared !== 0xffffffff || at + 8 > body.length) return declared;
      const value = Number(body.readBigUInt64LE(at));
      at += 8;
      return value;
    };
    const uncompressed = next(uncompressedSize);
    return { uncompressedSize: uncompressed, compressedSize: next(compressedSize) };
  }
  return undefined;
}

/**
 * Bytes of the data descriptor at `at` (after `compressedSize` bytes of data), recognised by
 * its compressed size: 16 or 24 (zip64) with its signature, 12 or 20 without; 0 when none is.
 */
export async function descriptorLengthAt(
  access: ZipSourceAccess,
  at: number,
  compressedSize: number,
): Promise<number> {
  const bytes = view(await access.read(at, 24));
  const matches = (position: number, wide: boolean): boolean => {
    if (position + (wide ? 8 : 4) > bytes.length) return false;
    return wide
      ? Number(bytes.readBigUInt64LE(position)) === compressedSize
      : bytes.readUInt32LE(position) === compressedSize % 2 ** 32;
  };
  const signed = bytes.length >= 4 && bytes.readUInt32LE(0) === descriptorSignature;
  if (signed && matches(8, false) && bytes.length >= 16) return 16;
  if (signed && matches(8, true) && bytes.length >= 24) return 24;
  if (matches(4, false) && bytes.length >= 12) return 12;
  if (matches(4, true) && bytes.length >= 20) return 20;
  return 0;
}

/** Where a data descriptor says its entry's data is: its length, and the descriptor's. */
export interface DescriptorEnd {
  compressedSize: number;
  /** Bytes of the descriptor (16, or 24 with zip64 sizes). */
  length: number;
}

/**
 * Records the signed data descriptor at `at` by where the data it ends would start (its
 * distance back by its compressed size, 4- or 8-byte), so that an entry whose local header
 * has no size finds its end at once: `ends.get(dataStart)`.
 */
export async function recordDescriptor(
  access: ZipSourceAccess,
  at: number,
  ends: Map<number, DescriptorEnd>,
): Promise<void> {
  const bytes = view(await access.read(at, 24));
  if (bytes.length >= 16) {
    const compressedSize = bytes.readUInt32LE(8);
    if (compressedSize <= at && !ends.has(at - compressedSize))
      ends.set(at - compressedSize, { compressedSize, length: 16 });
  }
  if (bytes.length >= 24) {
    const compressedSize = Number(bytes.readBigUInt64LE(8));
    if (compressedSize <= at && !ends.has(at - compressedSize))
      ends.set(at - compressedSize, { compressedSize, length: 24 });
  }
}

/** Where the end record at `offset` ends: after its comment (or at the end of the zip). */
export async function endRecordEnd(access: ZipSourceAccess, offset: number): Promise<number> {
  const record = view(await access.read(offset, 22));
  if (record.length < 22) return access.size;
  return Math.min(access.size, offset + 22 + record.readUInt16LE(20));
}

/**
 * The region of a central directory ending at the end record at `offset` (the directory, the
 * record and its comment), or undefined when the record does not point back at a directory.
 */
export async function directoryRegionEndingAt(
  access: ZipSourceAccess,
  offset: number,
): Promise<{ start: number; end: number } | undefined> {
  const record = view(await access.read(offset, 22));
  if (record.length < 22) return undefined;
  const directoryLength = record.readUInt32LE(12);
  const start = offset - directoryLength;
  const end = Math.min(access.size, offset + 22 + record.readUInt16LE(20));
  if (start < 0) return undefined;
  if (directoryLength === 0) return { start: offset, end };
  const first = view(await access.read(start, 4));
  return first.length === 4 && first.readUInt32LE(0) === centralRecordSignature
    ? { start, end }
    : undefined;
}
