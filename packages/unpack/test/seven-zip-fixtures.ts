// Fixtures of the 7-Zip extractor's tests, made at test time with the real tools (7zz,
// xorriso, gcab, xz, bzip2, lzma, lzip) in a temp directory; RAR and the 10 GiB 7z are
// written here byte by byte (see rarStored and zerosSevenZip).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32, gzipSync } from "node:zlib";
import { eicarBytes } from "@engine/core";

export { eicarBytes };

/** The worker script the extractor starts (the tests run it from the build). */
export const workerScript = fileURLToPath(new URL("../dist/seven-zip-worker.js", import.meta.url));

/** Throws with what to do when the worker script has not been built. */
export function requireBuiltWorker(): void {
  if (!existsSync(workerScript))
    throw new Error(`${workerScript} is missing: run \`pnpm build\` in packages/unpack first`);
}

/**
 * EICAR with 4 KiB of text after it: the scanner still finds it, and a compressor compresses
 * it (68 bytes alone are stored as they are by LZMA2, and the outer bytes would show them).
 */
export function paddedEicar(): Buffer {
  return Buffer.concat([eicarBytes(), Buffer.from(`\n${"padding line\n".repeat(320)}`)]);
}

/** EICAR gzipped: inside containers that store bytes as they are (ISO, stored RAR, cabinets). */
export function gzippedEicar(): Buffer {
  return gzipSync(eicarBytes());
}

/** A temp directory for the tests' files. */
export function scratchDirectory(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), "engine-7z-test-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs a tool, failing with its standard error. */
export function tool(
  command: string,
  args: string[],
  options: { cwd?: string; input?: Buffer } = {},
) {
  return execFileSync(command, args, {
    cwd: options.cwd,
    input: options.input,
    stdio: ["pipe", "pipe", "pipe"],
    maxBuffer: 256 * 1024 * 1024,
  });
}

/** Writes `files` (name -> content) under `directory`. */
export function writeTree(directory: string, files: Record<string, Uint8Array | string>): string[] {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(directory, name)), { recursive: true });
    writeFileSync(join(directory, name), content);
  }
  return Object.keys(files);
}

/** An archive written by `7zz a` (`flags`: `-pinfected`, `-mhe=on`, `-m0=BZip2`, `-tzip -mm=PPMd`). */
export function sevenZipArchive(
  scratch: string,
  name: string,
  files: Record<string, Uint8Array | string>,
  flags: string[] = [],
): Buffer {
  const input = mkdtempSync(join(scratch, "in-"));
  const names = writeTree(input, files);
  const output = join(scratch, name);
  tool("7zz", ["a", "-bd", "-y", ...flags, output, ...names], { cwd: input });
  return readFileSync(output);
}

/** An ISO 9660 image (Rock Ridge, Joliet) written by xorriso. */
export function isoImage(scratch: string, files: Record<string, Uint8Array | string>): Buffer {
  const input = mkdtempSync(join(scratch, "iso-"));
  writeTree(input, files);
  const output = join(scratch, "image.iso");
  tool("xorriso", ["-as", "mkisofs", "-quiet", "-R", "-J", "-o", output, input]);
  return readFileSync(output);
}

/** A cabinet written by gcab (`-z`: MSZIP compression). */
export function cabinet(
  scratch: string,
  files: Record<string, Uint8Array | string>,
  compress: boolean,
): Buffer {
  const input = mkdtempSync(join(scratch, "cab-"));
  const names = writeTree(input, files);
  const output = join(scratch, "files.cab");
  tool("gcab", ["-c", ...(compress ? ["-z"] : []), output, ...names], { cwd: input });
  return readFileSync(output);
}

/** `content` through a stream compressor reading standard input (`xz`, `bzip2`, `lzma`, `lzip`). */
export function compressed(command: "xz" | "bzip2" | "lzma" | "lzip", content: Uint8Array): Buffer {
  return tool(command, ["-c"], { input: Buffer.from(content) });
}

/**
 * A RAR archive of stored files, written here (no RAR writer exists in Debian). RAR 4: the
 * marker, the main header, a file header per file (method 0x30, store) with its bytes, the
 * end block; each header's CRC is the low 16 bits of the CRC-32 of the header after its CRC
 * field. RAR 5: the marker, a main header, a file header per file (compression info 0: store,
 * CRC-32 of the data), the end header; each header is its CRC-32, its size as a vint, then
 * the fields as vints. `encrypted` marks RAR 4 files encrypted (flag 0x04, a salt; the bytes
 * are random) and `encryptedHeaders` the RAR 4 main header (0x80: the rest is ciphertext).
 */
export function rarStored(
  version: 4 | 5,
  files: Array<{ name: string; content: Uint8Array | string; encrypted?: boolean }>,
  options: { encryptedHeaders?: boolean } = {},
): Buffer {
  return version === 4 ? rar4(files, options) : rar5(files);
}

function rar4Block(type: number, flags: number, body: Buffer): Buffer {
  const head = Buffer.alloc(7);
  head[2] = type;
  head.writeUInt16LE(flags, 3);
  head.writeUInt16LE(7 + body.length, 5);
  head.writeUInt16LE(crc32(Buffer.concat([head.subarray(2), body])) & 0xffff, 0);
  return Buffer.concat([head, body]);
}

function rar4(
  files: Array<{ name: string; content: Uint8Array | string; encrypted?: boolean }>,
  options: { encryptedHeaders?: boolean },
): Buffer {
  const marker = Buffer.from("Rar!\x1a\x07\x00", "latin1");
  const end = Buffer.from([0xc4, 0x3d, 0x7b, 0x00, 0x40, 0x07, 0x00]);
  if (options.encryptedHeaders)
    return Buffer.concat([marker, rar4Block(0x73, 0x80, Buffer.alloc(6)), Buffer.alloc(128, 0x5a)]);
  const parts = [marker, rar4Block(0x73, 0, Buffer.alloc(6))];
  for (const file of files) {
    const data = Buffer.from(file.content);
    const name = Buffer.from(file.name);
    const salt = file.encrypted ? 8 : 0;
    const header = Buffer.alloc(25 + name.length + salt);
    header.writeUInt32LE(data.length, 0); // packed size
    header.writeUInt32LE(data.length, 4); // unpacked size
    header[8] = 3; // host OS: Unix
    header.writeUInt32LE(crc32(data) >>> 0, 9);
    header.writeUInt32LE(0x5a210000, 13); // DOS time
    header[17] = 29; // version needed
    header[18] = 0x30; // method: store
    header.writeUInt16LE(name.length, 19);
    header.writeUInt32LE(0o100644, 21);
    name.copy(header, 25);
    const flags = 0x8000 | (file.encrypted ? 0x04 | 0x400 : 0);
    parts.push(rar4Block(0x74, flags, header), data);
  }
  parts.push(end);
  return Buffer.concat(parts);
}

function vint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest) byte |= 0x80;
    bytes.push(byte);
  } while (rest);
  return Buffer.from(bytes);
}

function rar5Header(fields: Buffer[]): Buffer {
  const body = Buffer.concat(fields);
  const sized = Buffer.concat([vint(body.length), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(sized) >>> 0);
  return Buffer.concat([crc, sized]);
}

function rar5(files: Array<{ name: string; content: Uint8Array | string }>): Buffer {
  const parts = [
    Buffer.from("Rar!\x1a\x07\x01\x00", "latin1"),
    rar5Header([vint(1), vint(0), vint(0)]),
  ];
  for (const file of files) {
    const data = Buffer.from(file.content);
    const name = Buffer.from(file.name);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(crc32(data) >>> 0);
    // type 2 (file), flags 2 (data area), data size, file flags 4 (CRC), size, attributes,
    // CRC, compression 0 (store), host OS 1 (Unix), name
    const fields = [vint(2), vint(2), vint(data.length), vint(4), vint(data.length), vint(0o644)];
    parts.push(rar5Header([...fields, crc, vint(0), vint(1), vint(name.length), name]), data);
  }
  parts.push(rar5Header([vint(5), vint(0), vint(0)]));
  return Buffer.concat(parts);
}

/**
 * A 7z of one member, `zeros.bin`, of `units` x 2 MiB zeros (5,120 units: 10 GiB) in about
 * 380 bytes per unit, written here because `7zz a` needs ~50 s to compress 10 GiB. The LZMA2
 * stream is `xz --format=raw --lzma2=preset=0` of 2 MiB of zeros, repeated: the first copy
 * resets the dictionary, the others only the state (control byte 0xDF instead of 0xFF), so
 * each decodes to the same 2 MiB. The header (7zFormat.txt): one pack stream, one folder with
 * one LZMA2 coder, its unpacked size, one file name; no CRC.
 */
export function zerosSevenZip(units: number): Buffer {
  const unitBytes = 2 * 1024 * 1024;
  const raw = tool("xz", ["--format=raw", "--lzma2=preset=0", "-c"], {
    input: Buffer.alloc(unitBytes),
  });
  if (raw[0] !== 0xff || raw.at(-1) !== 0) throw new Error("xz wrote an unexpected LZMA2 stream");
  const first = raw.subarray(0, raw.length - 1);
  const next = Buffer.from(first);
  next[0] = 0xdf; // state reset and properties, no dictionary reset
  const lzma2 = Buffer.concat([first, ...Array<Buffer>(units - 1).fill(next), Buffer.from([0])]);
  const number = (value: number) => {
    if (value < 0x80) return Buffer.from([value]);
    const bytes = Buffer.alloc(9);
    bytes[0] = 0xff;
    bytes.writeBigUInt64LE(BigInt(value), 1);
    return bytes;
  };
  const name = Buffer.from("zeros.bin\0", "utf16le");
  const bytes = (...values: number[]) => Buffer.from(values);
  const header = Buffer.concat([
    bytes(0x01, 0x04), // header, main streams info
    bytes(0x06),
    number(0),
    number(1),
    bytes(0x09),
    number(lzma2.length),
    bytes(0x00), // pack info
    bytes(0x07, 0x0b),
    number(1),
    bytes(0x00), // unpack info: one folder, not external
    number(1),
    bytes(0x21, 0x21),
    number(1),
    bytes(16), // one coder: LZMA2, dictionary 1 MiB
    bytes(0x0c),
    number(units * unitBytes),
    bytes(0x00), // unpack size, end of unpack info
    bytes(0x00), // end of streams info
    bytes(0x05),
    number(1),
    bytes(0x11),
    number(name.length + 1),
    bytes(0x00),
    name,
    bytes(0x00),
    bytes(0x00), // end of header
  ]);
  const start = Buffer.alloc(20);
  start.writeBigUInt64LE(BigInt(lzma2.length), 0);
  start.writeBigUInt64LE(BigInt(header.length), 8);
  start.writeUInt32LE(crc32(header) >>> 0, 16);
  const signature = Buffer.alloc(12);
  Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]).copy(signature);
  signature.writeUInt32LE(crc32(start) >>> 0, 8);
  return Buffer.concat([signature, start, lzma2, header]);
}

/** A zip whose entry `name` has its method (local and central headers) set to `method`. */
export function withZipMethod(zip: Buffer, name: string, method: number): Buffer {
  const patched = Buffer.from(zip);
  const nameBytes = Buffer.from(name);
  for (let at = patched.indexOf(nameBytes); at >= 0; at = patched.indexOf(nameBytes, at + 1)) {
    if (patched.readUInt32LE(at - 30) === 0x04034b50) patched.writeUInt16LE(method, at - 30 + 8);
    if (patched.readUInt32LE(at - 46) === 0x02014b50) patched.writeUInt16LE(method, at - 46 + 10);
  }
  return patched;
}
