import { gzipSync } from "node:zlib";
import { artifactFromBytes, createEicarScanner } from "@engine/core";
import { describe, expect, it } from "vitest";
import { createUnpackingScanner, type UnpackReport } from "../src/index.js";
import {
  eicarPadded,
  eicarPath,
  handZip,
  memberPaths,
  skipLines,
  toolZip,
  walkEvents,
} from "./zip-fixtures.js";

const report = (result: { metadata: Record<string, unknown> }) =>
  result.metadata.unpack as UnpackReport;

const scan = (bytes: Uint8Array, filename: string) =>
  createUnpackingScanner(createEicarScanner()).scan(artifactFromBytes(bytes, { filename }));

describe("zip: what one reader shows and another hides is looked into too", () => {
  it("finds EICAR in either of two concatenated zips (7-Zip shows the first, unzip the second)", async () => {
    const decoy = toolZip("zip", { "invoice.txt": "Dear customer, ..." });
    const payload = toolZip("zip", { "invoice.exe": eicarPadded() });
    const second = await scan(Buffer.concat([decoy, payload]), "invoice.zip");
    expect(second.verdict).toBe("malicious");
    expect(report(second).detected_in).toBe("invoice.zip!/invoice.exe");
    const first = await scan(Buffer.concat([payload, decoy]), "invoice.zip");
    expect(first.verdict).toBe("malicious");
    expect(report(first).detected_in).toBe(
      "invoice.zip!/invoice.exe (not in the central directory)",
    );
    const events = await walkEvents(Buffer.concat([payload, decoy]), {}, "invoice.zip");
    expect(events.filter((event) => event.kind === "member")).toMatchObject([
      { member: { path: "invoice.zip!/invoice.txt" } },
      { member: { path: "invoice.zip!/invoice.exe (not in the central directory)", hidden: true } },
    ]);
    expect(skipLines(events)).toEqual([]);
  });

  it("reads a nested zip spooled to a temp file (positional reads of the file) the same way", async () => {
    const decoy = toolZip("zip", { "invoice.txt": "Dear customer, ..." });
    const payload = toolZip("zip", { "invoice.exe": eicarPadded() });
    const outer = handZip([{ name: "mail.zip", content: Buffer.concat([payload, decoy]) }]);
    const events = await walkEvents(outer, { memoryLimitBytes: 0 }, "outer.zip");
    expect(memberPaths(events)).toEqual([
      "outer.zip!/mail.zip",
      "outer.zip!/mail.zip!/invoice.txt",
      "outer.zip!/mail.zip!/invoice.exe (not in the central directory)",
    ]);
    expect(skipLines(events)).toEqual([]);
  });

  it("finds EICAR in a zip appended to a gzip (unzip reads it)", async () => {
    const payload = toolZip("zip", { "eicar.com": eicarPadded() });
    const joined = Buffer.concat([gzipSync(Buffer.from("a harmless text")), payload]);
    const result = await scan(joined, "notes.gz");
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe("notes.gz!/(trailing data)!/eicar.com");
  });

  it("finds EICAR in a zip appended to other bytes (an image, a self-extractor's stub)", async () => {
    const payload = toolZip("zip", { "eicar.com": eicarPadded() });
    const image = Buffer.concat([Buffer.from("GIF89a"), Buffer.alloc(4000, 7)]);
    const result = await scan(Buffer.concat([image, payload]), "cat.gif");
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe("cat.gif!/eicar.com");
    const events = await walkEvents(Buffer.concat([image, payload]), {}, "cat.gif");
    expect(memberPaths(events)).toEqual(["cat.gif!/eicar.com", "cat.gif!/(unlisted bytes 0-4006)"]);
  });

  it("extracts a local entry missing from the central directory (7-Zip extracts it)", async () => {
    const archive = handZip([
      { name: "readme.txt", content: "nothing to see" },
      { name: "payload.exe", content: eicarPadded(), listed: false },
      { name: "license.txt", content: "MIT" },
    ]);
    const result = await scan(archive, "clean-looking.zip");
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe(
      "clean-looking.zip!/payload.exe (not in the central directory)",
    );
    const events = await walkEvents(archive, {}, "clean-looking.zip");
    expect(memberPaths(events)).toEqual([
      "clean-looking.zip!/readme.txt",
      "clean-looking.zip!/license.txt",
      "clean-looking.zip!/payload.exe (not in the central directory)",
    ]);
  });

  it("finds the ends of missing entries written with data descriptors (streamed zips)", async () => {
    const archive = handZip([
      { name: "listed.txt", content: "in the directory", descriptor: true },
      { name: "stored.com", content: eicarPadded(), method: 0, descriptor: true, listed: false },
      {
        name: "inner.zip",
        content: handZip([{ name: "deep.txt", content: "deep" }]),
        method: 0,
        descriptor: true,
        listed: false,
      },
      { name: "deflated.txt", content: "deflated ".repeat(50), descriptor: true, listed: false },
    ]);
    const events = await walkEvents(archive, {}, "streamed.zip");
    expect(memberPaths(events)).toEqual([
      "streamed.zip!/listed.txt",
      "streamed.zip!/stored.com (not in the central directory)",
      "streamed.zip!/inner.zip (not in the central directory)",
      "streamed.zip!/inner.zip (not in the central directory)!/deep.txt",
      "streamed.zip!/deflated.txt (not in the central directory)",
    ]);
    expect(skipLines(events)).toEqual([]);
    // A zip streamed by zip(1) (descriptors), then a second zip after it.
    const streamed = toolZip("zip", { "invoice.exe": eicarPadded(), "a.txt": "a" }, [], {
      streamed: true,
    });
    const decoy = toolZip("zip", { "invoice.txt": "Dear customer, ..." });
    const result = await scan(Buffer.concat([streamed, decoy]), "mail.zip");
    expect(result.verdict).toBe("malicious");
    expect(report(result).skipped_count).toBe(0);
  });

  it("finds a missing local entry whose signature straddles two read chunks (256 KiB)", async () => {
    const seam = 256 * 1024;
    const archive = handZip([
      { name: "pad.bin", content: Buffer.alloc(seam - 2 - 30 - "pad.bin".length, 0x20), method: 0 },
      { name: "payload.exe", content: eicarPadded(), listed: false },
    ]);
    expect(archive.indexOf("PK\x03\x04payload", 0, "latin1")).toBe(-1);
    expect(archive.readUInt32LE(seam - 2)).toBe(0x04034b50);
    const events = await walkEvents(archive, {}, "seam.zip");
    expect(memberPaths(events)).toEqual([
      "seam.zip!/pad.bin",
      "seam.zip!/payload.exe (not in the central directory)",
    ]);
  });

  it("reads both views of an entry whose local header disagrees with its directory record", async () => {
    // The directory says stored (a reader of it gets deflate bytes); the local header says deflate.
    const archive = handZip([{ name: "doc.txt", content: eicarPadded(), method: 8 }]);
    const disagreeing = Buffer.from(archive);
    const directory = disagreeing.lastIndexOf(Buffer.from("PK\x01\x02", "latin1"));
    disagreeing.writeUInt16LE(0, directory + 10); // directory: stored
    const result = await scan(disagreeing, "two-faced.zip");
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe("two-faced.zip!/doc.txt (as its local header has it)");
  });

  it("looks into data smuggled between the entries and the central directory", async () => {
    const hidden = gzipSync(eicarPadded());
    const archive = handZip([{ name: "readme.txt", content: "hello" }], { between: hidden });
    const result = await scan(archive, "smuggler.zip");
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toMatch(
      /^smuggler\.zip!\/\(unlisted bytes \d+-\d+\)!\/content$/,
    );
    const events = await walkEvents(archive, {}, "smuggler.zip");
    expect(
      events.find(
        (event) => event.kind === "member" && event.member.depth === 1 && event.member.hidden,
      ),
    ).toBeDefined();
    // An honest zip has nothing unlisted.
    const honest = toolZip("zip", { "a.txt": "alpha", "b.txt": "beta".repeat(500) });
    expect(memberPaths(await walkEvents(honest, {}, "honest.zip"))).toEqual([
      "honest.zip!/a.txt",
      "honest.zip!/b.txt",
    ]);
    // Nor does one written with data descriptors (streamed, as Java and Go write them).
    const streamed = toolZip("zip", { "a.txt": "alpha", "b.txt": "beta".repeat(500) }, [], {
      streamed: true,
    });
    expect(memberPaths(await walkEvents(streamed, {}, "streamed.zip"))).toEqual([
      "streamed.zip!/a.txt",
      "streamed.zip!/b.txt",
    ]);
  });

  it("finds a local header hidden in a stored entry's directory extent, past the data its local header declares (7-Zip extracts it)", async () => {
    const short = Buffer.from("benign readme text\n");
    // A local header and its deflated data, not in the directory (handZip with no record).
    const unlisted = handZip([{ name: "payload.com", content: eicarPadded(), listed: false }]);
    const smuggled = unlisted.subarray(0, unlisted.length - 22);
    const full = Buffer.concat([short, smuggled]);
    // The directory: readme.txt stored, the full size; its local header: the short size.
    const directoryFull = handZip([{ name: "readme.txt", content: full, method: 0 }]);
    directoryFull.writeUInt32LE(short.length, 18);
    directoryFull.writeUInt32LE(short.length, 22);
    // And the other way round: the directory short, the local header the full size.
    const localFull = handZip([{ name: "readme.txt", content: full, method: 0 }]);
    const record = localFull.lastIndexOf(Buffer.from("PK\x01\x02", "latin1"));
    localFull.writeUInt32LE(short.length, record + 20);
    localFull.writeUInt32LE(short.length, record + 24);
    for (const archive of [directoryFull, localFull]) {
      const result = await scan(archive, "smuggle.zip");
      expect(result.verdict).toBe("malicious");
      expect(report(result).detected_in).toBe(
        "smuggle.zip!/payload.com (not in the central directory)",
      );
      const events = await walkEvents(archive, {}, "smuggle.zip");
      expect(memberPaths(events)).toEqual([
        "smuggle.zip!/readme.txt",
        "smuggle.zip!/readme.txt (as its local header has it)",
        "smuggle.zip!/payload.com (not in the central directory)",
      ]);
      expect(skipLines(events)).toEqual([]);
    }
  });

  it("marks hidden an entry whose local header disagrees with its directory record, or whose data ends elsewhere (clamd reads the local header)", async () => {
    const hiddenOf = async (archive: Buffer) => {
      const events = await walkEvents(archive, {}, "two-faced.zip");
      expect(eicarPath(events)).toBe("two-faced.zip!/readme.txt");
      return events.flatMap((event) =>
        event.kind === "member" ? [[event.member.path, event.member.hidden === true]] : [],
      );
    };
    const honest = handZip([{ name: "readme.txt", content: eicarPadded() }]);
    const record = honest.lastIndexOf(Buffer.from("PK\x01\x02", "latin1"));
    expect(await hiddenOf(honest)).toEqual([["two-faced.zip!/readme.txt", false]]);
    // One field of the local header changed: the compressed size (Python's zipfile extracts
    // EICAR, clamd answers OK), the size, the CRC, the flags, the name.
    const patches: Array<(bytes: Buffer) => void> = [
      (bytes) => bytes.writeUInt32LE(64, 18),
      (bytes) => bytes.writeUInt32LE(1000, 22),
      (bytes) => bytes.writeUInt32LE(bytes.readUInt32LE(14) ^ 1, 14),
      (bytes) => bytes.writeUInt16LE(0x0002, 6),
      (bytes) => bytes.write("R", 30, "latin1"),
      // The directory and the local header agree on a compressed size the deflate stream
      // does not end at (a reader of that size gets a cut stream; ours inflates to its end),
      // or on a size it does not decode to (a reader trusting it stops before EICAR's end).
      (bytes) => {
        bytes.writeUInt32LE(64, 18);
        bytes.writeUInt32LE(64, record + 20);
      },
      (bytes) => {
        bytes.writeUInt32LE(40, 22);
        bytes.writeUInt32LE(40, record + 24);
      },
    ];
    for (const patch of patches) {
      const archive = Buffer.from(honest);
      patch(archive);
      expect(await hiddenOf(archive)).toEqual([["two-faced.zip!/readme.txt", true]]);
    }
    // An entry 7-Zip decodes for us (bzip2: clamd decodes it itself) is marked the same way.
    const bzip2 = toolZip("7zz", { "readme.txt": eicarPadded() }, ["-mm=BZip2"]);
    expect(await hiddenOf(bzip2)).toEqual([["two-faced.zip!/readme.txt", false]]);
    bzip2.write("R", 30, "latin1"); // the local name (7-Zip refuses a wrong size: CORRUPT)
    expect(await hiddenOf(bzip2)).toEqual([["two-faced.zip!/readme.txt", true]]);
    // Zips as tools write them have nothing hidden (data descriptors leave local sizes zero).
    const files = { "a.txt": "alpha", "b.txt": "beta".repeat(500), "c.com": eicarPadded() };
    for (const archive of [
      toolZip("zip", files),
      toolZip("zip", files, [], { streamed: true }),
      toolZip("7zz", files),
      handZip([
        { name: "d.txt", content: "delta".repeat(100), descriptor: true },
        { name: "e.txt", content: "echo", method: 0, descriptor: true },
      ]),
    ]) {
      const events = await walkEvents(archive, {}, "honest.zip");
      expect(memberPaths(events).length).toBeGreaterThan(1);
      expect(events.filter((event) => event.kind === "member" && event.member.hidden)).toEqual([]);
    }
  });
});
