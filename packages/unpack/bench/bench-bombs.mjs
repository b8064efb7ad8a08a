// The bombs of the unpack benchmark, written at run time by the real tools (gzip, bzip2, xz,
// zstd, zip, 7zz) and, for what tools refuse to write (Fifield's overlapping entries, a 7z of
// 10 GiB in a few hundred KiB), by hand here.
import { execFile } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { crc32, deflateRawSync, gzipSync } from "node:zlib";

const run = promisify(execFile);
const MiB = 2 ** 20;

/** `command` reading `input` bytes of zeros on standard input, its output in `path`. */
async function zerosThrough(command, megabytes, path) {
  await run("sh", ["-c", `head -c ${megabytes}M /dev/zero | ${command} > '${path}'`]);
  return readFile(path);
}

/** A 30-byte zip local header and its name. */
function localHeader(name, fields) {
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(20, 4);
  header.writeUInt16LE(8, 8); // deflate
  header.writeUInt32LE(0x00210000, 10);
  header.writeUInt32LE(fields.crc, 14);
  header.writeUInt32LE(fields.compressed, 18);
  header.writeUInt32LE(fields.size, 22);
  header.writeUInt16LE(name.length, 26);
  return Buffer.concat([header, name]);
}

/** A zip central directory record pointing at `offset`. */
function centralRecord(name, fields, offset) {
  const record = Buffer.alloc(46);
  record.writeUInt32LE(0x02014b50, 0);
  record.writeUInt16LE(0x031e, 4);
  record.writeUInt16LE(20, 6);
  record.writeUInt16LE(8, 10);
  record.writeUInt32LE(0x00210000, 12);
  record.writeUInt32LE(fields.crc, 16);
  record.writeUInt32LE(fields.compressed, 20);
  record.writeUInt32LE(fields.size, 24);
  record.writeUInt16LE(name.length, 28);
  record.writeUInt32LE(0o100644 * 0x10000, 38);
  record.writeUInt32LE(offset, 42);
  return Buffer.concat([record, name]);
}

function endRecord(records, directoryLength, directoryOffset) {
  const record = Buffer.alloc(22);
  record.writeUInt32LE(0x06054b50, 0);
  record.writeUInt16LE(records, 8);
  record.writeUInt16LE(records, 10);
  record.writeUInt32LE(directoryLength, 12);
  record.writeUInt32LE(directoryOffset, 16);
  return record;
}

/** zlib's crc32_combine: the CRC-32 of A then B from crc(A), crc(B) and B's length. */
function crc32Combine(crcA, crcB, lengthB) {
  const times = (matrix, vector) => {
    let sum = 0;
    for (let index = 0; vector; index += 1, vector >>>= 1) if (vector & 1) sum ^= matrix[index];
    return sum >>> 0;
  };
  const square = (target, matrix) => {
    for (let index = 0; index < 32; index += 1) target[index] = times(matrix, matrix[index]);
  };
  if (lengthB <= 0) return crcA;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0xedb88320;
  for (let index = 1, row = 1; index < 32; index += 1, row <<= 1) odd[index] = row;
  square(even, odd);
  square(odd, even);
  let crc = crcA;
  let length = lengthB;
  do {
    square(even, odd);
    if (length & 1) crc = times(even, crc);
    length = Math.floor(length / 2);
    if (!length) break;
    square(odd, even);
    if (length & 1) crc = times(odd, crc);
    length = Math.floor(length / 2);
  } while (length);
  return (crc ^ crcB) >>> 0;
}

/**
 * Fifield's overlapping-entry bomb, quoted form (bamsoftware.com/hacks/zipbomb): each entry's
 * data is a stored deflate block quoting the next local header, then the next entry's data,
 * down to one shared kernel; entry i decodes to every later header and the kernel. CRCs and
 * sizes are right (unzip would extract it).
 */
export function quotedOverlapBomb(files, kernelBytes) {
  const kernelContent = Buffer.alloc(kernelBytes, 0x61);
  const names = Array.from({ length: files }, (_, index) =>
    Buffer.from(`${index}`.padStart(5, "0")),
  );
  const headers = new Array(files);
  let data = deflateRawSync(kernelContent, { level: 9 });
  let outputCrc = crc32(kernelContent);
  let outputLength = kernelContent.length;
  for (let index = files - 1; index >= 0; index -= 1) {
    headers[index] = localHeader(names[index], {
      crc: outputCrc,
      compressed: data.length,
      size: outputLength,
    });
    if (index === 0) break;
    const quote = Buffer.alloc(5);
    quote.writeUInt16LE(headers[index].length, 1);
    quote.writeUInt16LE(~headers[index].length & 0xffff, 3);
    data = Buffer.concat([quote, headers[index], data]);
    outputCrc = crc32Combine(crc32(headers[index]), outputCrc, outputLength);
    outputLength += headers[index].length;
  }
  const body = Buffer.concat([headers[0], data]);
  const records = [];
  let offset = 0;
  for (let index = 0; index < files; index += 1) {
    const view = headers[index];
    records.push(
      centralRecord(
        names[index],
        {
          crc: view.readUInt32LE(14),
          compressed: view.readUInt32LE(18),
          size: view.readUInt32LE(22),
        },
        offset,
      ),
    );
    offset += headers[index].length + 5;
  }
  const directory = Buffer.concat(records);
  return Buffer.concat([body, directory, endRecord(files, directory.length, body.length)]);
}

/** Fifield's full-overlap form: one local header and its kernel, `files` records pointing at it. */
export function sharedHeaderBomb(files, kernelBytes) {
  const content = Buffer.alloc(kernelBytes, 0x61);
  const data = deflateRawSync(content, { level: 9 });
  const fields = { crc: crc32(content), compressed: data.length, size: content.length };
  const header = localHeader(Buffer.from("kernel"), fields);
  const records = Array.from({ length: files }, (_, index) =>
    centralRecord(Buffer.from(`${index}`.padStart(5, "0")), fields, 0),
  );
  const directory = Buffer.concat(records);
  const body = Buffer.concat([header, data]);
  return Buffer.concat([body, directory, endRecord(files, directory.length, body.length)]);
}

/**
 * A 7z of one member of `units` x 2 MiB zeros (5,120: 10 GiB) in ~380 bytes a unit: the LZMA2
 * chunks of `xz --format=raw --lzma2=preset=0` over 2 MiB of zeros, repeated with a state
 * reset only (0xDF), behind a minimal header (7zFormat.txt).
 */
async function zerosSevenZip(units) {
  const { stdout: raw } = await run(
    "sh",
    ["-c", "head -c 2M /dev/zero | xz --format=raw --lzma2=preset=0 -c"],
    { encoding: "buffer", maxBuffer: 64 * MiB },
  );
  const first = raw.subarray(0, raw.length - 1);
  const next = Buffer.from(first);
  next[0] = 0xdf;
  const lzma2 = Buffer.concat([first, ...Array(units - 1).fill(next), Buffer.from([0])]);
  const number = (value) => {
    if (value < 0x80) return Buffer.from([value]);
    const bytes = Buffer.alloc(9);
    bytes[0] = 0xff;
    bytes.writeBigUInt64LE(BigInt(value), 1);
    return bytes;
  };
  const bytes = (...values) => Buffer.from(values);
  const name = Buffer.from("zeros.bin\0", "utf16le");
  const header = Buffer.concat([
    bytes(0x01, 0x04, 0x06),
    number(0),
    number(1),
    bytes(0x09),
    number(lzma2.length),
    bytes(0x00, 0x07, 0x0b),
    number(1),
    bytes(0x00),
    number(1),
    bytes(0x21, 0x21),
    number(1),
    bytes(16, 0x0c),
    number(units * 2 * MiB),
    bytes(0x00, 0x00, 0x05),
    number(1),
    bytes(0x11),
    number(name.length + 1),
    bytes(0x00),
    name,
    bytes(0x00, 0x00),
  ]);
  const start = Buffer.alloc(20);
  start.writeBigUInt64LE(BigInt(lzma2.length), 0);
  start.writeBigUInt64LE(BigInt(header.length), 8);
  start.writeUInt32LE(crc32(header), 16);
  const signature = Buffer.alloc(12);
  Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]).copy(signature);
  signature.writeUInt32LE(crc32(start), 8);
  return Buffer.concat([signature, start, lzma2, header]);
}

/** A zip (zip's own) of `copies` copies of `inner`, named `<prefix><n>.zip`. */
async function zipOfCopies(directory, inner, copies, prefix, output) {
  const layer = join(directory, `${prefix}-layer`);
  await mkdir(layer, { recursive: true });
  const names = [];
  for (let index = 0; index < copies; index += 1) {
    const name = `${prefix}${index}.zip`;
    await writeFile(join(layer, name), inner);
    names.push(name);
  }
  await run("zip", ["-q", "-X", "-9", output, ...names], { cwd: layer });
  await rm(layer, { recursive: true, force: true });
  return readFile(output);
}

/**
 * Writes every bomb under `directory` and returns them (the first is the 7z: scanning it once
 * warms the 7-Zip worker). Each decodes to at least 1 GiB, most to 10 GiB or more.
 */
export async function buildBombs(directory) {
  await mkdir(directory, { recursive: true });
  const bombs = [];
  const add = async (label, name, bytes) => {
    const path = join(directory, name);
    await writeFile(path, bytes);
    bombs.push({ label, path, bytes: bytes.length });
  };
  await add("7z: 10 GiB of zeros (LZMA2)", "zeros.7z", await zerosSevenZip(5_120));
  // Multi-member streams: 40 x 256 MiB of zeros, 10 GiB in all.
  for (const [label, command, name] of [
    ["gzip: 10 GiB of zeros (40 members)", "gzip -1", "zeros.gz"],
    ["bzip2: 10 GiB of zeros (40 streams)", "bzip2 -1", "zeros.bz2"],
    ["zstd: 10 GiB of zeros (40 frames)", "zstd -q -3", "zeros.zst"],
    ["xz: 10 GiB of zeros (40 streams)", "xz -0 -T1", "zeros.xz"],
  ]) {
    const one = await zerosThrough(command, 256, join(directory, `one-${name}`));
    await add(label, name, Buffer.concat(Array(40).fill(one)));
  }
  const input = join(directory, "zeros-input");
  await mkdir(input, { recursive: true });
  await run("truncate", ["-s", "1G", join(input, "zeros.bin")]);
  await run("zip", ["-q", "-X", "-1", join(directory, "zeros.zip"), "zeros.bin"], { cwd: input });
  bombs.push({ label: "zip: 1 GiB of zeros (deflate)", path: join(directory, "zeros.zip") });
  await run(
    "7zz",
    ["a", "-bd", "-tzip", "-mm=LZMA", "-mx=1", join(directory, "zeros-lzma.zip"), "zeros.bin"],
    {
      cwd: input,
    },
  );
  bombs.push({
    label: "zip: 1 GiB of zeros (LZMA, by 7-Zip)",
    path: join(directory, "zeros-lzma.zip"),
  });
  await rm(input, { recursive: true, force: true });
  await add(
    "zip: Fifield overlap, 20,000 x 512 KiB",
    "overlap.zip",
    quotedOverlapBomb(20_000, 512 * 1024),
  );
  await add(
    "zip: Fifield full overlap, 65,534 x 1 MiB",
    "shared.zip",
    sharedHeaderBomb(65_534, MiB),
  );
  // 42.zip-style: 16 copies a layer, 4 layers, over a 1 GiB zip of zeros (16^4 x 1 GiB).
  let layer = await readFile(join(directory, "zeros.zip"));
  for (const [index, prefix] of ["d", "c", "b", "a"].entries())
    layer = await zipOfCopies(directory, layer, 16, prefix, join(directory, `layer-${index}.zip`));
  await add("42.zip-style: 16 copies x 4 layers of 1 GiB", "42.zip", layer);
  // Depth: 40 gzip layers around EICAR-free text.
  let deep = Buffer.from("deep\n");
  for (let level = 0; level < 40; level += 1) deep = gzipSync(deep);
  await add("gzip: 40 layers deep", "deep.gz", deep);
  return bombs;
}
