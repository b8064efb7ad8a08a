// The survey reads the central directory's records itself (the overlap check before anything
// is extracted); zip.js reads the same directory for the listing. On every shape a directory
// takes (written by zip and 7zz, streamed, zip64, after a stub, with a comment, with data
// appended), both must give each entry the same extent.
import { artifactFromBytes } from "@engine/core";
import { describe, expect, it } from "vitest";
import {
  centralDirectoryEntries,
  maximumAppendedBytes,
} from "../src/extractors/zip-central-directory.js";
import { surveyExtents } from "../src/extractors/zip-directory-survey.js";
import type { ByteRange } from "../src/extractors/zip-entry-ranges.js";
import { localHeaderLength } from "../src/extractors/zip-local-header.js";
import { ZipSourceAccess } from "../src/extractors/zip-source-access.js";
import { overlapBomb, sharedHeaderBomb, toolZip } from "./zip-fixtures.js";

const access = (bytes: Buffer) =>
  ZipSourceAccess.open(
    { artifact: artifactFromBytes(bytes), size: bytes.length, name: "test.zip" },
    new AbortController().signal,
  );

async function surveyed(bytes: Buffer, maximumRecords = 100_000): Promise<ByteRange[]> {
  const source = await access(bytes);
  try {
    return await surveyExtents(source, maximumRecords, maximumAppendedBytes);
  } finally {
    await source.close();
  }
}

/** The extents as zip.js's entries give them (what the survey did before it read records itself). */
async function zipJsExtents(bytes: Buffer): Promise<ByteRange[]> {
  const source = await access(bytes);
  const ranges: ByteRange[] = [];
  try {
    for await (const { offset, rawFilename, compressedSize } of centralDirectoryEntries(
      source,
      new AbortController().signal,
    ))
      ranges.push({
        start: offset,
        end: offset + localHeaderLength + rawFilename.length + compressedSize,
      });
  } finally {
    await source.close();
  }
  return ranges;
}

/**
 * The zip rewritten in zip64 form: every central record's sizes and offset moved to a zip64
 * extra field (0xffffffff in the record), a zip64 end record and locator before the end
 * record, whose counts and directory fields say 0xffff / 0xffffffff.
 */
function asZip64(zip: Buffer): Buffer {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const entries = zip.subarray(0, at);
  const records: Buffer[] = [];
  for (let index = 0; index < count; index += 1) {
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const record = Buffer.from(zip.subarray(at, at + 46 + nameLength));
    const zip64 = Buffer.alloc(28);
    zip64.writeUInt16LE(0x0001, 0);
    zip64.writeUInt16LE(24, 2);
    zip64.writeBigUInt64LE(BigInt(record.readUInt32LE(24)), 4);
    zip64.writeBigUInt64LE(BigInt(record.readUInt32LE(20)), 12);
    zip64.writeBigUInt64LE(BigInt(record.readUInt32LE(42)), 20);
    for (const field of [20, 24, 42]) record.writeUInt32LE(0xffffffff, field);
    record.writeUInt16LE(zip64.length + extraLength, 30);
    record.writeUInt16LE(0, 32);
    records.push(
      record,
      zip64,
      zip.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength),
    );
    at += 46 + nameLength + extraLength + commentLength;
  }
  const directory = Buffer.concat(records);
  const zip64End = Buffer.alloc(56);
  zip64End.writeUInt32LE(0x06064b50, 0);
  zip64End.writeBigUInt64LE(44n, 4);
  zip64End.writeUInt16LE(45, 12);
  zip64End.writeUInt16LE(45, 14);
  zip64End.writeBigUInt64LE(BigInt(count), 24);
  zip64End.writeBigUInt64LE(BigInt(count), 32);
  zip64End.writeBigUInt64LE(BigInt(directory.length), 40);
  zip64End.writeBigUInt64LE(BigInt(entries.length), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(entries.length + directory.length), 8);
  locator.writeUInt32LE(1, 16);
  const endRecord = Buffer.alloc(22);
  endRecord.writeUInt32LE(0x06054b50, 0);
  endRecord.writeUInt16LE(0xffff, 8);
  endRecord.writeUInt16LE(0xffff, 10);
  endRecord.writeUInt32LE(0xffffffff, 12);
  endRecord.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([entries, directory, zip64End, locator, endRecord]);
}

/** The zip with a comment, one that holds a stray end record signature (a decoy to skip). */
function withComment(zip: Buffer): Buffer {
  const comment = Buffer.concat([Buffer.from("PK\x05\x06"), Buffer.alloc(30, 0x2e)]);
  const commented = Buffer.from(zip);
  commented.writeUInt16LE(comment.length, commented.length - 2);
  return Buffer.concat([commented, comment]);
}

const files = {
  "readme.txt": "Dear customer,\n".repeat(40),
  "dir/nested name é.txt": "x".repeat(5000),
  "empty.txt": "",
};

describe("the directory survey", () => {
  const shapes: Array<[string, () => Buffer]> = [
    ["zip", () => toolZip("zip", files)],
    ["7zz", () => toolZip("7zz", files)],
    ["zip, streamed (data descriptors)", () => toolZip("zip", files, [], { streamed: true })],
    ["zip -fz (zip64 extra fields)", () => toolZip("zip", files, ["-fz"])],
    ["zip64 end record and fields", () => asZip64(toolZip("zip", files))],
    ["after a 4 KiB stub", () => Buffer.concat([Buffer.alloc(4096, 0x4d), toolZip("zip", files)])],
    [
      "zip64, after a stub",
      () => Buffer.concat([Buffer.alloc(4096, 0x4d), asZip64(toolZip("zip", files))]),
    ],
    ["with a comment holding an end record signature", () => withComment(toolZip("zip", files))],
    ["with data appended", () => Buffer.concat([toolZip("zip", files), Buffer.alloc(10_000, 7)])],
    ["Fifield's quoted overlap bomb", () => overlapBomb(40, 4096)],
    ["Fifield's full overlap bomb", () => sharedHeaderBomb(40, 4096)],
  ];

  it.each(shapes)("gives every entry of %s the extent zip.js gives it", async (_, make) => {
    const zip = make();
    const expected = await zipJsExtents(zip);
    expect(expected.length).toBeGreaterThanOrEqual(3);
    expect(await surveyed(zip)).toEqual(expected);
  });

  it("reads at most the records it is allowed", async () => {
    expect(await surveyed(sharedHeaderBomb(1000, 64), 300)).toHaveLength(300);
  });

  it("gives nothing where there is no directory, or a directory that does not begin with a record", async () => {
    expect(await surveyed(Buffer.from("not a zip at all"))).toEqual([]);
    // Shorter than an end record, with an end record's signature in it.
    expect(
      await surveyed(Buffer.from("PK\x05\x06 eighteen bytes", "latin1").subarray(0, 18)),
    ).toEqual([]);
    const zip = toolZip("zip", files);
    const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    const broken = Buffer.from(zip);
    broken.writeUInt32LE(0xdeadbeef, broken.readUInt32LE(end + 16));
    expect(await surveyed(broken)).toEqual([]);
    const far = Buffer.concat([zip, Buffer.alloc(maximumAppendedBytes + 70_000)]);
    expect(await surveyed(far)).toEqual([]);
  });
});
