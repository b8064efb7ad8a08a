/** The containers `@engine/unpack` looks into. Anything else is scanned as plain bytes. */
export const containerFormats = [
  "zip",
  "gzip",
  "bzip2",
  "xz",
  "lzma",
  "lzip",
  "zstd",
  "brotli",
  "tar",
  "7z",
  "rar",
  "iso",
  "cab",
  "cfb",
] as const;

/** One of {@link containerFormats}. */
export type ContainerFormat = (typeof containerFormats)[number];

/** Bytes of an artifact's head read to identify it (ISO's signature sits at 32 KiB + 1). */
export const headBytes = 40 * 1024;

/** True when `bytes` sit in `head` at `offset` (a plain loop: this runs for every artifact). */
function startsWith(head: Uint8Array, bytes: readonly number[], offset = 0): boolean {
  if (head.length < offset + bytes.length) return false;
  for (let index = 0; index < bytes.length; index += 1)
    if (head[offset + index] !== bytes[index]) return false;
  return true;
}

const ascii = (text: string): number[] => [...text].map((character) => character.charCodeAt(0));
const ustar = ascii("ustar");
const bzip2Magic = ascii("BZh");
const lzipMagic = ascii("LZIP");
const cabMagic = ascii("MSCF");
const isoMagic = ascii("CD001");

/** A tar header block: `ustar` magic, or (old V7 archives) a valid header checksum. */
function isTarHeader(head: Uint8Array): boolean {
  if (head.length < 512) return false;
  if (startsWith(head, ustar, 257)) return true;
  // V7: the checksum field (148, 8 octal digits) is the sum of the header with it as spaces.
  const field = Buffer.from(head.subarray(148, 156))
    .toString("latin1")
    .replace(/[\0 ]+$/, "");
  if (!/^[0-7]{1,7}$/.test(field.trim())) return false;
  // Unsigned, or signed as some old tars summed it (GNU tar takes either).
  let sum = 0;
  let signedSum = 0;
  for (let index = 0; index < 512; index += 1) {
    const byte = index >= 148 && index < 156 ? 0x20 : (head[index] as number);
    sum += byte;
    signedSum += byte >= 128 ? byte - 256 : byte;
  }
  const declared = Number.parseInt(field.trim(), 8);
  // A name must start the block, or an all-zero block would pass.
  return (declared === sum || declared === (signedSum & 0o777777)) && head[0] !== 0;
}

/**
 * A cabinet header: `MSCF`, then whatever its reserved field holds (gcab and cabextract read
 * it whatever it is), a cabinet size past the fixed header and a file table inside it.
 */
function isCabinetHeader(head: Uint8Array): boolean {
  if (head.length < 36 || !startsWith(head, cabMagic)) return false;
  const view = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const cabinetBytes = view.readUInt32LE(8);
  return cabinetBytes >= 36 && view.readUInt32LE(16) < cabinetBytes;
}

/**
 * An LZMA-alone (`.lzma`) header: properties, a dictionary size and an uncompressed size.
 * It has no magic number: a valid properties byte (any lc, lp, pb, as xz reads them), a
 * dictionary of 2^n or 2^n + 2^(n-1) bytes (at least 4 KiB) and a plausible size.
 */
function isLzmaAlone(head: Uint8Array): boolean {
  // Any valid lc/lp/pb (xz -d reads them all): (pb * 5 + lp) * 9 + lc, below 225.
  if (head.length < 13 || (head[0] as number) >= 9 * 5 * 5) return false;
  const view = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const dictionary = view.readUInt32LE(1);
  const powerOfTwo = (value: number) => value > 0 && (value & (value - 1)) === 0;
  const plausibleDictionary =
    dictionary >= 4096 &&
    (powerOfTwo(dictionary) || powerOfTwo(dictionary - (dictionary & -dictionary)));
  const size = view.readBigUInt64LE(5);
  return plausibleDictionary && (size === 0xffffffffffffffffn || size < 1n << 40n);
}

/** Signatures at the start (or, for ISO and tar, inside) of each format. */
const magicChecks: ReadonlyArray<[ContainerFormat, (head: Uint8Array) => boolean]> = [
  [
    "zip",
    (head) =>
      startsWith(head, [0x50, 0x4b, 0x03, 0x04]) ||
      startsWith(head, [0x50, 0x4b, 0x05, 0x06]) ||
      startsWith(head, [0x50, 0x4b, 0x07, 0x08]),
  ],
  ["gzip", (head) => startsWith(head, [0x1f, 0x8b])],
  [
    "bzip2",
    (head) => startsWith(head, bzip2Magic) && (head[3] ?? 0) >= 0x31 && (head[3] ?? 0) <= 0x39,
  ],
  ["xz", (head) => startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ["lzip", (head) => startsWith(head, lzipMagic)],
  [
    "zstd",
    // A zstd frame, or a skippable frame first (pzstd writes one ahead of its frames).
    (head) =>
      startsWith(head, [0x28, 0xb5, 0x2f, 0xfd]) ||
      (((head[0] ?? 0) & 0xf0) === 0x50 && startsWith(head, [0x2a, 0x4d, 0x18], 1)),
  ],
  ["7z", (head) => startsWith(head, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])],
  ["rar", (head) => startsWith(head, [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07])],
  ["cab", isCabinetHeader],
  ["cfb", (head) => startsWith(head, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])],
  ["iso", (head) => [0x8001, 0x8801, 0x9001].some((offset) => startsWith(head, isoMagic, offset))],
  ["tar", isTarHeader],
  ["lzma", isLzmaAlone],
];

/** What else is known of an artifact: a name or type may add a decoder to try, never remove one. */
export interface ContainerHints {
  filename?: string | undefined;
  mimetype?: string | undefined;
  /** The artifact's last bytes (up to 64 KiB + 22): a zip's end record sits there. */
  tail?: Uint8Array | undefined;
}

/** A format to try on an artifact. */
export interface ContainerCandidate {
  format: ContainerFormat;
  /**
   * True when the content announces it (magic bytes at their place): a container that then
   * does not decode is corrupt (`SKIPPED:CORRUPT`). False when only a name, a type or a
   * signature elsewhere suggests it: failing to decode, the bytes are plain, as before.
   */
  certain: boolean;
}

/** A zip end-of-central-directory record's signature, PK\x05\x06. */
const zipEndSignature = Buffer.from([0x50, 0x4b, 0x05, 0x06]);

/** True when `tail` holds a zip end-of-central-directory record (a zip appended to other bytes). */
function hasZipEnd(tail: Uint8Array | undefined): boolean {
  if (!tail || tail.length < 22) return false;
  // One native search from the end, not one per "P" (binaries are full of them).
  const bytes = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength);
  return bytes.lastIndexOf(zipEndSignature, tail.length - 22) >= 0;
}

/**
 * The formats only a name or declared type suggests (brotli, which has no magic number): two
 * members with the same content but such a hint apart are walked apart.
 */
export function hintedFormats(hints: Pick<ContainerHints, "filename" | "mimetype">): string {
  const name = hints.filename?.toLowerCase() ?? "";
  const type = hints.mimetype?.toLowerCase() ?? "";
  return name.endsWith(".br") || type === "application/x-brotli" || type === "application/brotli"
    ? "brotli"
    : "";
}

/**
 * The container formats to try on an artifact, most specific first: those its content
 * announces (magic bytes at their place, `certain`), then those only a name, a declared type
 * or a signature elsewhere suggests (brotli has no magic number: `.br`, `application/x-brotli`;
 * a zip's end record in the last bytes: a zip appended to an image). A hint never removes a
 * format the content announces. Empty: plain bytes.
 */
export function identifyContainer(
  head: Uint8Array,
  hints: ContainerHints = {},
): ContainerCandidate[] {
  const found: ContainerCandidate[] = [];
  for (const [format, matches] of magicChecks)
    if (matches(head)) found.push({ format, certain: true });
  const has = (format: ContainerFormat) => found.some((candidate) => candidate.format === format);
  if (hintedFormats(hints) === "brotli" && !has("brotli"))
    found.push({ format: "brotli", certain: false });
  if (!has("zip") && hasZipEnd(hints.tail)) found.push({ format: "zip", certain: false });
  return found;
}
