// What one reader shows and another hides, and headers the real tools read that a strict
// check would miss: polyglots (a zip in an ISO's system area or padding, a zip after a brotli
// stream), a gzip member forging its own trailer, the same bytes under a name that adds a
// format, and loose headers (a cabinet's reserved field, a V7 tar's signed checksum, LZMA
// with any lc/lp/pb). Each was answered benign before (found by an adversarial review).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliCompressSync, constants, deflateRawSync, gzipSync } from "node:zlib";
import { artifactFromBytes, createEicarScanner, eicarBytes } from "@engine/core";
import { afterAll, describe, expect, it } from "vitest";
import { crc32 } from "../src/extractors/crc32.js";
import { createUnpackingScanner } from "../src/index.js";

const scratch = mkdtempSync(join(tmpdir(), "engine-differentials-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const scan = async (bytes: Uint8Array, filename: string) => {
  const scanner = createUnpackingScanner(createEicarScanner());
  try {
    return await scanner.scan(artifactFromBytes(bytes, { filename }));
  } finally {
    await scanner.close?.();
  }
};

// --- a minimal zip writer (stored/deflate entries, sizes patchable) -------------------------
interface Entry {
  name: string;
  data: Uint8Array;
  method?: 0 | 8;
}
function localHeader(name: string, method: number, crc: number, csize: number, usize: number) {
  const n = Buffer.from(name);
  const h = Buffer.alloc(30);
  h.writeUInt32LE(0x04034b50, 0);
  h.writeUInt16LE(20, 4);
  h.writeUInt16LE(method, 8);
  h.writeUInt32LE(crc, 14);
  h.writeUInt32LE(csize, 18);
  h.writeUInt32LE(usize, 22);
  h.writeUInt16LE(n.length, 26);
  return Buffer.concat([h, n]);
}
function centralRecord(
  name: string,
  method: number,
  crc: number,
  csize: number,
  usize: number,
  offset: number,
) {
  const n = Buffer.from(name);
  const h = Buffer.alloc(46);
  h.writeUInt32LE(0x02014b50, 0);
  h.writeUInt16LE(20, 4);
  h.writeUInt16LE(20, 6);
  h.writeUInt16LE(method, 10);
  h.writeUInt32LE(crc, 16);
  h.writeUInt32LE(csize, 20);
  h.writeUInt32LE(usize, 24);
  h.writeUInt16LE(n.length, 28);
  h.writeUInt32LE(offset, 42);
  return Buffer.concat([h, n]);
}
function endRecord(entries: number, cdLength: number, cdOffset: number) {
  const e = Buffer.alloc(22);
  e.writeUInt32LE(0x06054b50, 0);
  e.writeUInt16LE(entries, 8);
  e.writeUInt16LE(entries, 10);
  e.writeUInt32LE(cdLength, 12);
  e.writeUInt32LE(cdOffset, 16);
  return e;
}
function zipOf(entries: Entry[], base = 0): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = base;
  for (const { name, data, method = 0 } of entries) {
    const packed = method === 8 ? deflateRawSync(data) : Buffer.from(data);
    const crc = crc32(data, 0);
    const local = Buffer.concat([
      localHeader(name, method, crc, packed.length, data.length),
      packed,
    ]);
    centrals.push(centralRecord(name, method, crc, packed.length, data.length, offset));
    locals.push(local);
    offset += local.length;
  }
  const cd = Buffer.concat(centrals);
  return Buffer.concat([...locals, cd, endRecord(entries.length, cd.length, offset)]);
}

describe("every view of a polyglot, every member a standard tool extracts", () => {
  it("a zip/ISO polyglot: the ISO's files are looked into (7-Zip and a mounted ISO show them)", async () => {
    const tree = join(scratch, "iso1");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "payload.gz"), gzipSync(eicarBytes()));
    writeFileSync(join(tree, "readme.txt"), "hello\n");
    const out = join(scratch, "p.iso");
    execFileSync("xorriso", ["-as", "mkisofs", "-quiet", "-o", out, tree], { stdio: "ignore" });
    const iso = Buffer.from(readFileSync(out));
    // A stored zip entry in the ISO's system area (first 32 KiB, ignored by ISO readers) and
    // its directory appended after the image.
    const data = Buffer.from("just a benign readme\n");
    const local = localHeader("readme.txt", 0, crc32(data, 0), data.length, data.length);
    Buffer.concat([local, data]).copy(iso, 0);
    const cd = centralRecord("readme.txt", 0, crc32(data, 0), data.length, data.length, 0);
    const polyglot = Buffer.concat([iso, cd, endRecord(1, cd.length, iso.length)]);
    const result = await scan(polyglot, "image.iso");
    expect(result.verdict).toBe("malicious"); // before: benign
  });

  it("a zip inside an ISO's padding (unzip extracts it) is looked into", async () => {
    const tree = join(scratch, "iso2");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "readme.txt"), "hello\n");
    const out = join(scratch, "b.iso");
    execFileSync("xorriso", ["-as", "mkisofs", "-quiet", "-o", out, tree], { stdio: "ignore" });
    const iso = Buffer.from(readFileSync(out));
    const zip = zipOf([{ name: "eicar.com", data: eicarBytes(), method: 8 }]);
    expect(iso.subarray(-70_000).every((byte) => byte === 0)).toBe(true);
    zip.copy(iso, iso.length - zip.length - 100);
    const result = await scan(iso, "image.iso");
    expect(result.verdict).toBe("malicious"); // before: benign
  });

  it("a zip appended to a brotli stream (unzip extracts it) is looked into", async () => {
    const lead = brotliCompressSync(Buffer.from("benign text\n"));
    const zip = zipOf([{ name: "eicar.com", data: eicarBytes(), method: 8 }]);
    const result = await scan(Buffer.concat([lead, zip]), "notes.br");
    expect(result.verdict).toBe("malicious"); // before: benign (brotli proven, trailing bytes ignored)
  });

  it("a gzip whose first member's content holds its own CRC/size: the second member is decoded", async () => {
    // CRC-32 forging: 4 bytes appended to `data` so that crc32 becomes `target`.
    const table = Array.from({ length: 256 }, (_, i) => {
      let c = i;
      for (let k = 0; k < 8; k += 1) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
      return c >>> 0;
    });
    const byTop = new Map(table.map((value, index) => [value >>> 24, index]));
    const forge = (data: Buffer, target: number): Buffer => {
      let reg = (target ^ 0xffffffff) >>> 0;
      const indices: number[] = [];
      for (let k = 0; k < 4; k += 1) {
        const index = byTop.get(reg >>> 24) as number;
        indices.unshift(index);
        reg = ((reg ^ (table[index] as number)) << 8) >>> 0;
      }
      let c = (crc32(data, 0) ^ 0xffffffff) >>> 0;
      const out = Buffer.alloc(4);
      indices.forEach((index, k) => {
        const byte = (c ^ index) & 0xff;
        out[k] = byte;
        c = ((c >>> 8) ^ (table[(c ^ byte) & 0xff] as number)) >>> 0;
      });
      return out;
    };
    const lead = Buffer.from("This is a perfectly benign readme.\n");
    const target = 0x1f8b0800;
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(target, 0);
    trailer.writeUInt32LE(lead.length + 12, 4);
    const content = Buffer.concat([lead, trailer]);
    const first = Buffer.concat([content, forge(content, target)]);
    expect(crc32(first, 0)).toBe(target);
    // Stored deflate blocks: the forged trailer bytes appear as they are in the body.
    const body = deflateRawSync(first, { level: 0 });
    const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    const member1 = Buffer.concat([header, body, trailer]);
    const member2 = gzipSync(eicarBytes()); // gunzip outputs both members
    const result = await scan(Buffer.concat([member1, member2]), "notes.gz");
    expect(result.verdict).toBe("malicious"); // before: benign
  });

  it("brotli content seen first under another name is still decoded under a .br name", async () => {
    const br = brotliCompressSync(eicarBytes(), {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11 },
    });
    const zip = zipOf([
      { name: "notes.txt", data: br },
      { name: "payload.br", data: br },
    ]);
    expect((await scan(zipOf([{ name: "payload.br", data: br }]), "one.zip")).verdict).toBe(
      "malicious",
    );
    const result = await scan(zip, "two.zip");
    expect(result.verdict).toBe("malicious"); // before: benign (payload.br skipped as a duplicate)
  });
});

describe("headers as loose as the real decoders read them", () => {
  const gzEicar = () => gzipSync(eicarBytes());
  it("a cabinet whose reserved1 field is not zero (gcab, cabextract extract it) is not plain bytes", async () => {
    const dir = join(scratch, "cab");
    mkdirSync(dir, { recursive: true });
    const filler = Array.from({ length: 300 }, (_, i) => `filler line ${i}\n`).join("");
    writeFileSync(join(dir, "member.txt"), Buffer.concat([Buffer.from(filler), eicarBytes()]));
    execFileSync("gcab", ["-cz", "z.cab", "member.txt"], { cwd: dir });
    const cab = Buffer.from(readFileSync(join(dir, "z.cab")));
    cab[4] = 0x41;
    expect(cab.includes(Buffer.from("EICAR"))).toBe(false);
    // 7-Zip refuses what gcab reads: not decoded, so unknown (before: benign, never tried).
    const result = await scan(cab, "setup.cab");
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:CORRUPT");
  });

  it("a V7 tar (no ustar magic) whose checksum is the signed sum (GNU tar accepts it) is not plain bytes", async () => {
    const payload = gzEicar();
    const header = Buffer.alloc(512);
    Buffer.from("r\u00e9sum\u00e9.gz", "utf8").copy(header, 0);
    header.write("0000644\0", 100, "latin1");
    header.write("0000000\0", 108, "latin1");
    header.write("0000000\0", 116, "latin1");
    header.write(`${payload.length.toString(8).padStart(11, "0")}\0`, 124, "latin1");
    header.write("00000000000\0", 136, "latin1");
    header[156] = 0x30;
    header.fill(0x20, 148, 156);
    let signed = 0;
    for (const byte of header) signed += byte >= 128 ? byte - 256 : byte;
    header.write(`${(signed & 0o777777).toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const body = Buffer.concat([payload, Buffer.alloc((512 - (payload.length % 512)) % 512)]);
    const tar = Buffer.concat([header, body, Buffer.alloc(1024)]);
    // tar-stream refuses the signed sum GNU tar takes: unknown (before: benign, never tried).
    const result = await scan(tar, "old.tar");
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:CORRUPT");
  });

  it("LZMA-alone with lc/lp/pb other than 3/0/2 (xz -d and lzma -d decode it)", async () => {
    const dir = join(scratch, "lzma");
    mkdirSync(dir, { recursive: true });
    const filler = Array.from({ length: 300 }, (_, i) => `filler line ${i}\n`).join("");
    writeFileSync(join(dir, "m.txt"), Buffer.concat([Buffer.from(filler), eicarBytes()]));
    const lzma = execFileSync(
      "xz",
      ["--format=lzma", "--lzma1=preset=6,lc=0,lp=0,pb=0", "-c", "m.txt"],
      { cwd: dir },
    );
    expect((await scan(lzma, "m.lzma")).verdict).toBe("malicious"); // before: benign
  });
});
