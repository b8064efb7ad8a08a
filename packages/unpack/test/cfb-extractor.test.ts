import { randomBytes } from "node:crypto";
import { artifactFromBytes, createEicarScanner, ScanAbortedError } from "@engine/core";
import CFB from "cfb";
import { describe, expect, it } from "vitest";
import {
  createUnpackingScanner,
  type UnpackEvent,
  type UnpackReport,
  unpack,
} from "../src/index.js";
import { eicarBytes, leastStall } from "./fixtures.js";

/** A compound file holding `streams` (path -> content), written by cfb. */
function compoundFile(streams: Record<string, Uint8Array | string>): Buffer {
  const container = CFB.utils.cfb_new();
  for (const [path, content] of Object.entries(streams))
    CFB.utils.cfb_add(container, `/${path}`, Buffer.from(content));
  return Buffer.from(CFB.write(container, { type: "buffer" }) as Uint8Array);
}

/** The sectors of a compound file written by cfb (512-byte sectors, FAT sectors in the header). */
function sectorsOf(file: Buffer) {
  const fatEntry = (sector: number) =>
    (file.readInt32LE(76 + Math.floor(sector / 128) * 4) + 1) * 512 + (sector % 128) * 4;
  return {
    next: (sector: number) => file.readInt32LE(fatEntry(sector)),
    setNext: (sector: number, next: number) => file.writeInt32LE(next, fatEntry(sector)),
    offset: (sector: number) => (sector + 1) * 512,
    /** The byte offset of each directory entry, in order. */
    directory(): number[] {
      const offsets: number[] = [];
      for (let sector = file.readInt32LE(48); sector >= 0; sector = this.next(sector))
        for (let slot = 0; slot < 4; slot += 1) offsets.push(this.offset(sector) + slot * 128);
      return offsets;
    },
    /** The directory entry of the stream `name`. */
    entry(name: string): number {
      const found = this.directory().find(
        (at) => file.toString("utf16le", at, at + file.readUInt16LE(at + 64) - 2) === name,
      );
      if (found === undefined) throw new Error(`no entry ${name}`);
      return found;
    },
  };
}

/** Every event of an unpack, with each member's content. */
async function walk(
  bytes: Uint8Array,
  options: Parameters<typeof unpack>[1] = {},
  filename = "doc.bin",
) {
  const events: Array<UnpackEvent & { content?: Buffer }> = [];
  for await (const event of unpack(artifactFromBytes(bytes, { filename }), options)) {
    if (event.kind === "member")
      events.push({ ...event, content: Buffer.from(await event.member.artifact.bytes()) });
    else events.push(event);
  }
  return events;
}
const members = (events: Awaited<ReturnType<typeof walk>>) =>
  events.flatMap((event) => (event.kind === "member" ? [event.member.path] : []));
const skips = (events: Awaited<ReturnType<typeof walk>>) =>
  events.flatMap((event) =>
    event.kind === "skipped"
      ? [`${event.path} ${event.code}${event.limit ? ` ${event.limit}` : ""}`]
      : [],
  );
const contentOf = (events: Awaited<ReturnType<typeof walk>>, path: string) =>
  events.find((event) => event.kind === "member" && event.member.path === path)?.content;

/** An encrypted OOXML package as Office writes it: agile EncryptionInfo, EncryptedPackage. */
function encryptedPackage(): Buffer {
  const descriptor =
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n<encryption xmlns="http://schemas.microsoft.com/office/2006/encryption" xmlns:p="http://schemas.microsoft.com/office/2006/keyEncryptor/password"><keyData saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" saltValue="AAAAAAAAAAAAAAAAAAAAAA=="/></encryption>';
  // Version 4.4 (agile), reserved 0x40, then the XML descriptor.
  const info = Buffer.concat([Buffer.from([4, 0, 4, 0, 0x40, 0, 0, 0]), Buffer.from(descriptor)]);
  const size = Buffer.alloc(8);
  size.writeUInt32LE(12_345);
  return compoundFile({
    EncryptionInfo: info,
    EncryptedPackage: Buffer.concat([size, randomBytes(12_352)]),
    "\u0006DataSpaces/Version": Buffer.from("Microsoft.Container.DataSpaces"),
  });
}

/** A Word 97 FIB (the start of the WordDocument stream), its flags at offset 10. */
function wordDocument(flags: number): Buffer {
  const fib = Buffer.alloc(1472);
  fib.writeUInt16LE(0xa5ec, 0);
  fib.writeUInt16LE(0x00c1, 2);
  fib.writeUInt16LE(flags, 10);
  return fib;
}

/** An Excel BIFF8 workbook stream: BOF, optionally FILEPASS (RC4 CryptoAPI), then EOF. */
function workbook(encrypted: boolean): Buffer {
  const record = (type: number, data: Buffer) => {
    const header = Buffer.alloc(4);
    header.writeUInt16LE(type, 0);
    header.writeUInt16LE(data.length, 2);
    return Buffer.concat([header, data]);
  };
  const beginning = record(0x0809, Buffer.from("0006050054380000c1c0000006030000", "hex"));
  const filePass = record(
    0x002f,
    Buffer.concat([Buffer.from([1, 0, 2, 0, 2, 0]), randomBytes(200)]),
  );
  const body = record(0x00e1, Buffer.from([0xb0, 0x04]));
  const end = record(0x000a, Buffer.alloc(0));
  return Buffer.concat([
    beginning,
    ...(encrypted ? [filePass] : []),
    body,
    end,
    Buffer.alloc(4096),
  ]);
}

/** A PowerPoint `Current User` stream with its headerToken. */
function currentUser(encrypted: boolean): Buffer {
  const atom = Buffer.alloc(48);
  atom.writeUInt16LE(0x0ff6, 2);
  atom.writeUInt32LE(40, 4);
  atom.writeUInt32LE(0x14, 8);
  atom.writeUInt32LE(encrypted ? 0xf3d1c4df : 0xe391c05f, 12);
  return atom;
}

describe("cfb: every stream of a compound file, by its path", () => {
  it("yields each stream with its path inside the compound file, EICAR found in its own", async () => {
    const file = compoundFile({
      WordDocument: wordDocument(0),
      "\u0005SummaryInformation": "summary",
      "ObjectPool/_1234567/payload.com": eicarBytes(),
    });
    const events = await walk(file, {}, "letter.doc");
    expect(skips(events)).toEqual([]);
    expect(members(events)).toEqual(
      expect.arrayContaining([
        "letter.doc!/WordDocument",
        "letter.doc!/\\x05SummaryInformation",
        "letter.doc!/ObjectPool/_1234567/payload.com",
      ]),
    );
    expect(contentOf(events, "letter.doc!/ObjectPool/_1234567/payload.com")).toEqual(eicarBytes());
  });

  it("follows a fragmented stream's FAT chain: EICAR split across sectors found by the scanner", async () => {
    // A 16-sector stream whose 9th and 10th sectors are swapped on disk (the FAT says so),
    // EICAR across the boundary of its 8th and 9th: not in the file's bytes, whole in the stream.
    const stream = Buffer.alloc(8192, 0x20);
    eicarBytes().copy(stream, 8 * 512 - 30);
    const file = compoundFile({ "Data/big.bin": stream });
    expect(file.includes(eicarBytes())).toBe(true);
    const sectors = sectorsOf(file);
    const start = file.readInt32LE(sectors.entry("big.bin") + 116);
    const [eighth, ninth, tenth] = [start + 8, start + 9, start + 10];
    const swapped = Buffer.from(
      file.subarray(sectors.offset(eighth), sectors.offset(eighth) + 512),
    );
    file.copy(file, sectors.offset(eighth), sectors.offset(ninth), sectors.offset(ninth) + 512);
    swapped.copy(file, sectors.offset(ninth));
    sectors.setNext(start + 7, ninth);
    sectors.setNext(ninth, eighth);
    sectors.setNext(eighth, tenth);
    expect(file.includes(eicarBytes())).toBe(false);

    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(file, { filename: "sheet.xls" }));
    expect(result.verdict).toBe("malicious");
    expect((result.metadata.unpack as UnpackReport).detected_in).toBe("sheet.xls!/Data/big.bin");
  });

  it("refuses a compound file larger than maxMemberBytes (cfb reads it whole) as LIMITS", async () => {
    const file = compoundFile({ "big.bin": randomBytes(20_000) });
    expect(skips(await walk(file, { limits: { maxMemberBytes: 16_384 } }))).toEqual([
      "doc.bin LIMITS maxMemberBytes",
    ]);
  });

  it("answers a compound file cut short CORRUPT, never benign", async () => {
    const file = compoundFile({ "big.bin": randomBytes(20_000), "small.txt": "hello" });
    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(file.subarray(0, 1024)));
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:CORRUPT");
  });
});

describe("cfb: encrypted Office documents", () => {
  it("answers encrypted OOXML (EncryptionInfo + EncryptedPackage) unknown, SKIPPED:ENCRYPTED", async () => {
    const file = encryptedPackage();
    expect(skips(await walk(file, {}, "invoice.docx"))).toEqual(["invoice.docx ENCRYPTED"]);
    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(file, { filename: "invoice.docx" }));
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:ENCRYPTED");
  });

  it("skips the encrypted streams of a legacy Word, Excel or PowerPoint document as ENCRYPTED", async () => {
    const word = await walk(
      compoundFile({ WordDocument: wordDocument(0x0100), "1Table": randomBytes(600), Other: "x" }),
      {},
      "a.doc",
    );
    expect(skips(word)).toEqual(["a.doc!/1Table ENCRYPTED", "a.doc!/WordDocument ENCRYPTED"]);
    expect(members(word)).toContain("a.doc!/Other");
    const excel = await walk(compoundFile({ Workbook: workbook(true) }), {}, "b.xls");
    expect(skips(excel)).toEqual(["b.xls!/Workbook ENCRYPTED"]);
    const powerPoint = await walk(
      compoundFile({ "Current User": currentUser(true), "PowerPoint Document": randomBytes(700) }),
      {},
      "c.ppt",
    );
    expect(skips(powerPoint)).toEqual(["c.ppt!/PowerPoint Document ENCRYPTED"]);
  });

  it("reads the same documents in the clear whole", async () => {
    const clear = [
      compoundFile({ WordDocument: wordDocument(0x0200), "1Table": randomBytes(600) }),
      compoundFile({ Workbook: workbook(false) }),
      compoundFile({ "Current User": currentUser(false), "PowerPoint Document": randomBytes(700) }),
    ];
    for (const file of clear) expect(skips(await walk(file))).toEqual([]);
  });
});

describe("cfb: files crafted against cfb's parser end quickly, never benign", () => {
  it("refuses a FAT chain looping back into itself (cfb 1.2.2 would loop forever)", async () => {
    const file = compoundFile({ A: Buffer.alloc(8192, 0x41), B: Buffer.alloc(4096, 0x42) });
    const sectors = sectorsOf(file);
    const start = file.readInt32LE(sectors.entry("A") + 116);
    // A's last sector points back to its second; B starts there.
    sectors.setNext(start + 15, start + 1);
    file.writeInt32LE(start + 1, sectors.entry("B") + 116);
    const started = Date.now();
    expect(skips(await walk(file))).toEqual(["doc.bin CORRUPT"]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("refuses a directory whose sibling links cfb would queue forever", async () => {
    const file = compoundFile(
      Object.fromEntries(Array.from({ length: 6 }, (_, index) => [`S${index}`, `stream ${index}`])),
    );
    const links = [
      [-1, -1, -1],
      [7, 1, -1],
      [-1, 1, 3],
      [-1, -1, -1],
      [6, 3, 6],
      [6, 1, 3],
      [7, -1, -1],
      [5, -1, -1],
    ];
    sectorsOf(file)
      .directory()
      .forEach((at, index) => {
        const [left, right, child] = links[index] as number[];
        file.writeInt32LE(left as number, at + 68);
        file.writeInt32LE(right as number, at + 72);
        file.writeInt32LE(child as number, at + 76);
      });
    const started = Date.now();
    expect(skips(await walk(file))).toEqual(["doc.bin CORRUPT"]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("refuses chains cfb would copy quadratically (a chain stored backwards) as LIMITS", async () => {
    // 2,000 sectors chained last to first: cfb copies the chain from each of them, 2 GB.
    const file = compoundFile({ big: randomBytes(2_000 * 512) });
    const sectors = sectorsOf(file);
    const entry = sectors.entry("big");
    const start = file.readInt32LE(entry + 116);
    for (let index = 1; index < 2_000; index += 1)
      sectors.setNext(start + index, start + index - 1);
    sectors.setNext(start, -2);
    file.writeInt32LE(start + 1_999, entry + 116);
    const started = Date.now();
    expect(skips(await walk(file, { limits: { maxMemberBytes: 2 * 1024 * 1024 } }))).toEqual([
      "doc.bin LIMITS maxMemberBytes",
    ]);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe("cfb: a large compound file is read off the event loop (review F7)", () => {
  /** 48 streams of 1 MiB and EICAR: ~48 MiB, which cfb takes ~0.2-0.3 s to read. */
  const large = () =>
    compoundFile({
      ...Object.fromEntries(
        Array.from({ length: 48 }, (_, index) => [`Data/s${index}`, Buffer.alloc(1 << 20, index)]),
      ),
      "ObjectPool/payload.com": eicarBytes(),
    });

  it("reads a 48 MiB compound file in a worker thread: every stream, the event loop never held", async () => {
    const file = large();
    let events: Awaited<ReturnType<typeof walk>> = [];
    const stall = await leastStall(
      async () => {
        events = await walk(file, {}, "big.doc");
      },
      { boundMs: 100 },
    );
    console.log(
      `a ${file.length}-byte compound file: the event loop held ${Math.round(stall)} ms at most`,
    );
    expect(skips(events)).toEqual([]);
    expect(members(events)).toEqual(
      expect.arrayContaining([
        ...Array.from({ length: 48 }, (_, index) => `big.doc!/Data/s${index}`),
        "big.doc!/ObjectPool/payload.com",
      ]),
    );
    expect(contentOf(events, "big.doc!/ObjectPool/payload.com")).toEqual(eicarBytes());
    expect(contentOf(events, "big.doc!/Data/s47")?.equals(Buffer.alloc(1 << 20, 47))).toBe(true);
    // Before: cfb read it on the event loop (~0.2-0.3 s at once here, 1 s for 100 MiB).
    expect(stall).toBeLessThan(100);
  });

  it("stops reading a large compound file as soon as the signal fires", async () => {
    const file = large();
    // The time from the abort's due moment to the walk's end, for one run.
    const abortedAfter = async () => {
      const controller = new AbortController();
      let started = 0;
      let error: unknown;
      try {
        for await (const event of unpack(artifactFromBytes(file, { filename: "big.doc" }), {
          signal: controller.signal,
        }))
          if (event.kind === "container") {
            // cfb starts reading it now: the abort is due 20 ms later.
            started = performance.now();
            setTimeout(() => controller.abort(), 20);
          }
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ScanAbortedError);
      expect(started).toBeGreaterThan(0);
      return performance.now() - started;
    };
    // The least of up to 3 runs: a loaded machine delays a timer now and then, a walk that
    // ignores its signal until cfb is done does so on every run.
    let took = Number.POSITIVE_INFINITY;
    for (let run = 0; run < 3 && took >= 60; run += 1) took = Math.min(took, await abortedAfter());
    console.log(
      `a ${file.length}-byte compound file, aborted after 20 ms: stopped after ${Math.round(took)} ms`,
    );
    // Before: the abort's timer fired only once cfb was done (0.1-0.3 s here).
    expect(took).toBeLessThan(60);
  });
});
