import { describe, expect, it } from "vitest";
import { identifyContainer } from "../src/container-formats.js";
import { tarOf } from "./fixtures.js";

const formats = (head: Uint8Array, hints = {}) =>
  identifyContainer(head, hints).map(
    (candidate) => `${candidate.format}${candidate.certain ? "" : "?"}`,
  );
const bytes = (...values: number[]) => Uint8Array.from(values);

describe("identifyContainer: formats by their content, a name only adds one to try", () => {
  it("knows each format by its magic bytes", async () => {
    expect(formats(bytes(0x50, 0x4b, 3, 4, 0))).toEqual(["zip"]);
    expect(formats(bytes(0x1f, 0x8b, 8, 0))).toEqual(["gzip"]);
    expect(formats(Buffer.from("BZh91AY"))).toEqual(["bzip2"]);
    expect(formats(bytes(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0))).toEqual(["xz"]);
    expect(formats(Buffer.from("LZIP\x01"))).toEqual(["lzip"]);
    expect(formats(bytes(0x28, 0xb5, 0x2f, 0xfd))).toEqual(["zstd"]);
    expect(formats(bytes(0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c))).toEqual(["7z"]);
    expect(formats(Buffer.from("Rar!\x1a\x07\x01\x00"))).toEqual(["rar"]);
    const cabinet = Buffer.alloc(64);
    cabinet.write("MSCF", 0, "latin1");
    cabinet.writeUInt32LE(64, 8); // cabinet size
    cabinet.writeUInt32LE(44, 16); // first file entry
    expect(formats(cabinet)).toEqual(["cab"]);
    cabinet.writeUInt32LE(0x41414141, 4); // reserved: gcab and cabextract read it anyway
    expect(formats(cabinet)).toEqual(["cab"]);
    expect(formats(Buffer.from("MSCF\0\0\0\0"))).toEqual([]); // too short for a header
    expect(formats(bytes(0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1))).toEqual(["cfb"]);
    const iso = Buffer.alloc(0x8010);
    iso.write("CD001", 0x8001, "latin1");
    expect(formats(iso)).toEqual(["iso"]);
    expect(formats(await tarOf({ "a.txt": "x" }))).toEqual(["tar"]);
    const lzma = Buffer.from([
      0x5d, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
    ]);
    expect(formats(lzma)).toEqual(["lzma"]);
    lzma[0] = 0; // lc=0, lp=0, pb=0: xz reads any valid properties
    expect(formats(lzma)).toEqual(["lzma"]);
    lzma[0] = 225; // not a properties byte
    expect(formats(lzma)).toEqual([]);
  });

  it("takes plain bytes as plain, and a V7 tar by its header checksum", async () => {
    expect(formats(Buffer.from("just some text, nothing inside"))).toEqual([]);
    expect(formats(Buffer.alloc(1024))).toEqual([]);
    const v7 = await tarOf({ "old.txt": "x" });
    v7.fill(0, 257, 265); // no ustar magic: the checksum still matches (magic bytes were counted before)
    // (with the magic zeroed the stored checksum no longer matches: recompute it as V7 writers do)
    let sum = 0;
    for (let index = 0; index < 512; index += 1)
      sum += index >= 148 && index < 156 ? 0x20 : (v7[index] as number);
    v7.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    expect(formats(v7)).toEqual(["tar"]);
  });

  it("tries brotli when a name or type says so, and a zip whose end record is in the tail, never instead of the content's format", () => {
    expect(formats(Buffer.from("anything"), { filename: "page.html.br" })).toEqual(["brotli?"]);
    expect(formats(Buffer.from("anything"), { mimetype: "application/x-brotli" })).toEqual([
      "brotli?",
    ]);
    const tail = Buffer.concat([Buffer.alloc(100), bytes(0x50, 0x4b, 5, 6), Buffer.alloc(18)]);
    expect(formats(Buffer.from("GIF89a..."), { tail })).toEqual(["zip?"]);
    expect(formats(bytes(0x1f, 0x8b, 8, 0), { filename: "x.zip", tail })).toEqual(["gzip", "zip?"]);
  });
});
