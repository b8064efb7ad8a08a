import { describe, expect, it } from "vitest";
import { LzipCheck, lzipDictionarySize, lzmaAloneHeader } from "../src/extractors/lzip-to-lzma.js";
import {
  methodName,
  outcomeOfError,
  outcomeOfOpenFailure,
  parseListing,
  splitErrorLine,
} from "../src/extractors/seven-zip-listing.js";

/** `7zz l -slt` of a solid 7z with a directory, a link and an encrypted file (7-Zip 24.09). */
const listing = `
7-Zip (z) 24.09 (LE) : Copyright (c) 1999-2024 Igor Pavlov : 2024-11-29

Listing archive: /in/container

--
Path = /in/container
Type = 7z
WARNINGS:
There are data after the end of archive
Physical Size = 3000475
Tail Size = 124
Solid = +

----------
Path = sub
Size = 0
Packed Size = 0
Attributes = D drwxr-xr-x
Encrypted = -
Block = 

Path = a.txt
Size = 6
Packed Size = 3000261
Attributes = A -rw-r--r--
Encrypted = -
Method = LZMA2:3m BCJ
Block = 0

Path = r.bin
Size = 3000000
Packed Size = 
Attributes = A -rw-r--r--
Encrypted = +
Method = LZMA2:3m 7zAES:19
Block = 0

Path = link
Size = 11
Attributes = A lrwxrwxrwx
Block = 0
`.split("\n");

describe("parseListing: 7zz l -slt", () => {
  it("reads entries, directories, links, encryption, solid blocks' packed sizes and the archive's end", () => {
    const parsed = parseListing(listing);
    expect(parsed.physicalSize).toBe(3000475);
    expect(parsed.problems).toEqual(["There are data after the end of archive"]);
    expect(
      parsed.entries.map(({ path, directory, link, encrypted, packedSize }) => ({
        path,
        directory,
        link,
        encrypted,
        packedSize,
      })),
    ).toEqual([
      { path: "sub", directory: true, link: false, encrypted: false, packedSize: undefined },
      { path: "a.txt", directory: false, link: false, encrypted: false, packedSize: 3000261 },
      { path: "r.bin", directory: false, link: false, encrypted: true, packedSize: 3000261 },
      { path: "link", directory: false, link: true, encrypted: false, packedSize: 3000261 },
    ]);
    expect(parsed.entries[1]?.index).toBe(1);
  });

  it("names a method by its whole chain of coders, without parameters", () => {
    expect(methodName("LZMA2:3m BCJ")).toBe("lzma2 bcj");
    expect(methodName("BCJ2 LZMA2:24 LZMA:20")).toBe("bcj2 lzma2 lzma");
    expect(methodName("Delta:4 LZMA:16")).toBe("delta lzma");
    expect(methodName("PPMd:o6:mem24")).toBe("ppmd");
    expect(methodName("v6:128K:m3")).toBe("m3");
    expect(methodName("MSZip")).toBe("mszip");
    expect(methodName("")).toBeUndefined();
  });

  it("reads 7-Zip's errors: the entry, and what the message means", () => {
    expect(splitErrorLine("ERROR: CRC Failed : dir/a.txt")).toEqual({
      message: "CRC Failed",
      name: "dir/a.txt",
    });
    expect(splitErrorLine("Everything is Ok")).toBeUndefined();
    expect(outcomeOfError("Unsupported Method")).toMatchObject({ code: "UNSUPPORTED" });
    expect(outcomeOfError("Data Error in encrypted file. Wrong password?")).toMatchObject({
      code: "ENCRYPTED",
    });
    expect(outcomeOfError("CRC Failed")).toMatchObject({ code: "CORRUPT" });
    expect(outcomeOfError("There are some data after the end of the payload data")).toBe(
      "trailing",
    );
    expect(outcomeOfError("Dangerous link path was ignored")).toBe("ignored");
    expect(
      outcomeOfOpenFailure(
        ["ERROR: /in/container : Cannot open encrypted archive. Wrong password?"],
        "7z",
        "/in/container",
      ),
    ).toEqual({
      code: "ENCRYPTED",
      reason:
        "the 7z archive's headers are encrypted (no password is tried): Cannot open encrypted archive. Wrong password?",
    });
    expect(
      outcomeOfOpenFailure(["Cannot open the file as archive"], "7z", "/in/container").code,
    ).toBe("CORRUPT");
  });
});

describe("lzip as LZMA-alone", () => {
  it("decodes lzip's dictionary sizes (4 KiB to 512 MiB)", () => {
    expect(lzipDictionarySize(0x0c)).toBe(4096);
    expect(lzipDictionarySize(0x17)).toBe(8 * 1024 * 1024);
    expect(lzipDictionarySize(0x17 | (3 << 5))).toBe(8 * 1024 * 1024 - 3 * 512 * 1024);
    expect(lzipDictionarySize(0x0b)).toBeUndefined();
    expect(lzipDictionarySize(0x1e)).toBeUndefined();
  });

  it("writes an LZMA-alone header of unknown size, its dictionary one 7-Zip takes", () => {
    expect(Buffer.from(lzmaAloneHeader(4096)).toString("hex")).toBe("5d00100000ffffffffffffffff");
    const dictionary = (size: number) => Buffer.from(lzmaAloneHeader(size)).readUInt32LE(1);
    expect(dictionary(4608)).toBe(6144);
    expect(dictionary(6144)).toBe(6144);
    expect(dictionary(6145)).toBe(8192);
    expect(dictionary(8 * 1024 * 1024 - 3 * 512 * 1024)).toBe(8 * 1024 * 1024);
  });

  it("checks each member's size and CRC-32 as content comes out", () => {
    const text = Buffer.from("hello");
    const good = new LzipCheck([
      { dataSize: 5, crc32: 0x3610a686 },
      { dataSize: 0, crc32: 0 },
      { dataSize: 5, crc32: 0x3610a686 },
    ]);
    expect(good.update(text.subarray(0, 2))).toBeUndefined();
    expect(good.update(Buffer.concat([text.subarray(2), text]))).toBeUndefined();
    expect(good.finish()).toBeUndefined();
    const short = new LzipCheck([{ dataSize: 6, crc32: 0 }]);
    expect(short.update(text)).toBeUndefined();
    expect(short.finish()).toMatch(/fewer bytes/);
    expect(new LzipCheck([{ dataSize: 5, crc32: 1 }]).update(text)).toMatch(/CRC-32/);
  });
});
