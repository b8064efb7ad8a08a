import { randomBytes } from "node:crypto";
import { artifactFromBytes, createEicarScanner, defineScanner } from "@engine/core";
import CFB from "cfb";
import { describe, expect, it } from "vitest";
import { UnpackSkip } from "../src/extractors/extractor.js";
import { vbaDecompress } from "../src/extractors/vba-decompression.js";
import {
  createUnpackingScanner,
  type UnpackEvent,
  type UnpackReport,
  unpack,
} from "../src/index.js";
import { eicarBytes } from "./fixtures.js";

/**
 * MS-OVBA compression ([MS-OVBA] 2.4.1.3.6), for the fixtures: greedy longest matches within
 * each 4096-byte chunk, a raw chunk when compressing a whole chunk does not pay.
 */
function vbaCompress(data: Uint8Array): Buffer {
  const parts: Buffer[] = [Buffer.from([1])];
  for (let chunkStart = 0; chunkStart < data.length; chunkStart += 4096) {
    const chunk = data.subarray(chunkStart, chunkStart + 4096);
    const body: number[] = [];
    for (let position = 0; position < chunk.length; ) {
      const flagAt = body.length;
      body.push(0);
      for (let bit = 0; bit < 8 && position < chunk.length; bit += 1) {
        let bitCount = 4;
        while (1 << bitCount < position) bitCount += 1;
        const maximumLength = (0xffff >> bitCount) + 3;
        let bestLength = 0;
        let bestOffset = 0;
        for (let candidate = position - 1; candidate >= 0; candidate -= 1) {
          let length = 0;
          while (
            length < maximumLength &&
            position + length < chunk.length &&
            chunk[candidate + length] === chunk[position + length]
          )
            length += 1;
          if (length > bestLength) {
            bestLength = length;
            bestOffset = position - candidate;
          }
        }
        if (bestLength >= 3) {
          const token = ((bestOffset - 1) << (16 - bitCount)) | (bestLength - 3);
          body.push(token & 0xff, token >> 8);
          body[flagAt] = (body[flagAt] as number) | (1 << bit);
          position += bestLength;
        } else {
          body.push(chunk[position] as number);
          position += 1;
        }
      }
    }
    if (body.length > 4096) {
      if (chunk.length < 4096) throw new Error("the fixture's last chunk does not compress");
      parts.push(Buffer.from([0xff, 0x3f]), Buffer.from(chunk));
      continue;
    }
    const header = 0xb000 | (body.length + 2 - 3);
    parts.push(Buffer.from([header & 0xff, header >> 8]), Buffer.from(body));
  }
  return Buffer.concat(parts);
}

/** A `dir` stream record: Id, Size, data. */
function dirRecord(id: number, data: Buffer | string = Buffer.alloc(0)): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  const header = Buffer.alloc(6);
  header.writeUInt16LE(id, 0);
  header.writeUInt32LE(bytes.length, 2);
  return Buffer.concat([header, bytes]);
}
const u16 = (value: number) => Buffer.from([value & 0xff, value >> 8]);
const u32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
};
const utf16 = (text: string) => Buffer.from(text, "utf16le");

interface ModuleFixture {
  name: string;
  source: string;
  kind?: "procedural" | "document";
}

/** The `dir` stream (decompressed) of a project with `modules`, as Office writes its records. */
function dirStream(modules: Array<ModuleFixture & { offset: number }>): Buffer {
  const project = [
    dirRecord(0x0001, u32(1)),
    dirRecord(0x004a, u32(0x61)),
    dirRecord(0x0002, u32(0x0409)),
    dirRecord(0x0014, u32(0x0409)),
    dirRecord(0x0003, u16(1252)),
    dirRecord(0x0004, "VBAProject"),
    dirRecord(0x0005),
    dirRecord(0x0040),
    dirRecord(0x0006),
    dirRecord(0x003d),
    dirRecord(0x0007, u32(0)),
    dirRecord(0x0008, u32(0)),
    // PROJECTVERSION: Reserved (4) where a size would be, then 6 bytes.
    Buffer.concat([u16(0x0009), u32(4), u32(1_500_000_000), u16(7)]),
    dirRecord(0x000c),
    dirRecord(0x003c),
    dirRecord(0x0016, "stdole"),
    dirRecord(0x003e, utf16("stdole")),
    dirRecord(
      0x000d,
      Buffer.concat([
        u32(94),
        Buffer.from(
          "*\\G{00020430-0000-0000-C000-000000000046}#2.0#0#C:\\Windows\\System32\\stdole2.tlb#OLE Automation",
          "latin1",
        ).subarray(0, 94),
        u32(0),
        u16(0),
      ]),
    ),
    dirRecord(0x000f, u16(modules.length)),
    dirRecord(0x0013, u16(0xffff)),
  ];
  const moduleRecords = modules.flatMap((module) => [
    dirRecord(0x0019, module.name),
    dirRecord(0x0047, utf16(module.name)),
    dirRecord(0x001a, module.name),
    dirRecord(0x0032, utf16(module.name)),
    dirRecord(0x001c),
    dirRecord(0x0048),
    dirRecord(0x0031, u32(module.offset)),
    dirRecord(0x001e, u32(0)),
    dirRecord(0x002c, u16(0xffff)),
    dirRecord(module.kind === "document" ? 0x0022 : 0x0021),
    dirRecord(0x002b),
  ]);
  return Buffer.concat([...project, ...moduleRecords, dirRecord(0x0010)]);
}

/**
 * The streams of a VBA project under `storage` (`VBA` in a vbaProject.bin, `Macros/VBA` in a
 * .doc): `dir`, `_VBA_PROJECT`, and each module's stream, its compressed source after a
 * (random) performance cache.
 */
function vbaProjectStreams(storage: string, modules: ModuleFixture[]): Record<string, Buffer> {
  const streams: Record<string, Buffer> = {};
  const placed = modules.map((module, index) => {
    const cache = randomBytes(100 + index * 37);
    streams[`${storage}/${module.name}`] = Buffer.concat([
      cache,
      vbaCompress(Buffer.from(module.source, "latin1")),
    ]);
    return { ...module, offset: cache.length };
  });
  streams[`${storage}/dir`] = vbaCompress(dirStream(placed));
  streams[`${storage}/_VBA_PROJECT`] = Buffer.from([0xcc, 0x61, 0xff, 0xff, 0x00, 0x00, 0x00]);
  const parent = storage.split("/").slice(0, -1).join("/");
  streams[parent ? `${parent}/PROJECT` : "PROJECT"] = Buffer.from(
    `${modules.map((module) => `Module=${module.name}\r\n`).join("")}Name="VBAProject"\r\n`,
  );
  return streams;
}

/** A compound file holding `streams`, written by cfb. */
function compoundFile(streams: Record<string, Uint8Array | string>): Buffer {
  const container = CFB.utils.cfb_new();
  for (const [path, content] of Object.entries(streams))
    CFB.utils.cfb_add(container, `/${path}`, Buffer.from(content));
  return Buffer.from(CFB.write(container, { type: "buffer" }) as Uint8Array);
}

const macro = [
  'Attribute VB_Name = "Module1"',
  "Sub AutoOpen()",
  '    Dim command As String: command = "powershell -nop -w hidden -c IEX"',
  '    Shell "cmd /c " & command, vbHide',
  "End Sub",
  "",
].join("\r\n");
const thisDocument = [
  'Attribute VB_Name = "ThisDocument"',
  'Attribute VB_Base = "1Normal.ThisDocument"',
  "Private Sub Document_Open()",
  "    AutoOpen",
  "End Sub",
  "",
].join("\r\n");

/** Flags macro source that runs a shell when the document opens (a test rule). */
const macroScanner = defineScanner({
  name: "macro-marker",
  scan: async (artifact) => {
    const text = Buffer.from(await artifact.bytes()).toString("latin1");
    const flagged = text.includes("Sub AutoOpen()") && text.includes("Shell ");
    return flagged
      ? { verdict: "malicious", confidence: 1, metadata: { malware_family: "Test.VBA.AutoShell" } }
      : { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
  },
});

/** Every event of an unpack, with each member's content. */
async function walk(bytes: Uint8Array, filename: string) {
  const events: Array<UnpackEvent & { content?: Buffer }> = [];
  for await (const event of unpack(artifactFromBytes(bytes, { filename }))) {
    if (event.kind === "member")
      events.push({ ...event, content: Buffer.from(await event.member.artifact.bytes()) });
    else events.push(event);
  }
  return events;
}
const skips = (events: Awaited<ReturnType<typeof walk>>) =>
  events.flatMap((event) => (event.kind === "skipped" ? [`${event.path} ${event.code}`] : []));
const contentOf = (events: Awaited<ReturnType<typeof walk>>, path: string) =>
  events
    .find((event) => event.kind === "member" && event.member.path === path)
    ?.content?.toString("latin1");

describe("MS-OVBA decompression ([MS-OVBA] 2.4.1) against the specification's examples", () => {
  it("3.2.1 no compression", () => {
    const compressed = Buffer.from(
      "0119b00061626364656667680069" + "6a6b6c6d6e6f7000717273747576" + "2e",
      "hex",
    );
    expect(Buffer.from(vbaDecompress(compressed, 4096)).toString("latin1")).toBe(
      "abcdefghijklmnopqrstuv.",
    );
  });

  it("3.2.2 normal compression", () => {
    const compressed = Buffer.from(
      "012fb00023616161626364658266007061676869" +
        "6a013808616b6c00306d6e6f700671027004107273747576107778797a003c",
      "hex",
    );
    expect(Buffer.from(vbaDecompress(compressed, 4096)).toString("latin1")).toBe(
      "#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa",
    );
  });

  it("3.2.3 maximum compression", () => {
    const compressed = Buffer.from("0103b002614500", "hex");
    expect(Buffer.from(vbaDecompress(compressed, 4096)).toString("latin1")).toBe("a".repeat(73));
  });

  it("refuses a bad signature byte, chunk signature, or a copy token before its chunk", () => {
    const bad = [
      "002fb000236161", // signature byte 0
      "012fa000236161", // chunk signature 2
      "0103b0010100", // a copy token first
    ];
    for (const hex of bad)
      expect(() => vbaDecompress(Buffer.from(hex, "hex"), 4096)).toThrow(UnpackSkip);
  });

  it("round-trips what the fixtures' compressor writes, raw chunks and all", () => {
    const text = Buffer.from(`${macro}${"x = x + 1\r\n".repeat(900)}`, "latin1");
    const random = Buffer.concat([randomBytes(8192), Buffer.from("tail")]);
    for (const data of [text, random, Buffer.from("a"), Buffer.alloc(10_000, 0x61)]) {
      const compressed = vbaCompress(data);
      expect(Buffer.from(vbaDecompress(compressed, data.length)).equals(data)).toBe(true);
    }
  });

  it("refuses to decompress past its bound (LIMITS), a chunk at a time", () => {
    const chunk = vbaCompress(Buffer.alloc(4096, 0x61)).subarray(1);
    const bomb = Buffer.concat([Buffer.from([1]), ...Array.from({ length: 1000 }, () => chunk)]);
    expect(bomb.length).toBeLessThan(20_000);
    expect(() => vbaDecompress(bomb, 1024 * 1024)).toThrow(/more than 1048576 bytes/);
  });
});

describe("VBA macros: each module's source, decompressed, as a member", () => {
  it("reads the modules of a vbaProject.bin (OOXML) as VBA/<module>.bas and .cls", async () => {
    const file = compoundFile(
      vbaProjectStreams("VBA", [
        { name: "Module1", source: macro },
        { name: "ThisDocument", source: thisDocument, kind: "document" },
      ]),
    );
    const events = await walk(file, "vbaProject.bin");
    expect(skips(events)).toEqual([]);
    expect(contentOf(events, "vbaProject.bin!/VBA/Module1.bas")).toBe(macro);
    expect(contentOf(events, "vbaProject.bin!/VBA/ThisDocument.cls")).toBe(thisDocument);
    // The module's stream is a member too (its performance cache and compressed source).
    expect(contentOf(events, "vbaProject.bin!/VBA/Module1")).toBeDefined();
  });

  it("finds a marker in a .doc's macro source (Macros/VBA) with a defineScanner rule", async () => {
    const file = compoundFile({
      WordDocument: Buffer.alloc(1024),
      ...vbaProjectStreams("Macros/VBA", [{ name: "Module1", source: macro }]),
    });
    // Compressed, the source is not in the file's bytes: only the decompressed member has it.
    expect(file.includes(Buffer.from("Sub AutoOpen()"))).toBe(false);
    const scanner = createUnpackingScanner(macroScanner);
    const result = await scanner.scan(artifactFromBytes(file, { filename: "invoice.doc" }));
    expect(result.verdict).toBe("malicious");
    expect(result.metadata.malware_family).toBe("Test.VBA.AutoShell");
    expect((result.metadata.unpack as UnpackReport).detected_in).toBe(
      "invoice.doc!/Macros/VBA/Module1.bas",
    );
  });

  it("finds EICAR inside the macro source of an .xls project (_VBA_PROJECT_CUR/VBA)", async () => {
    const source = `Attribute VB_Name = "Module1"\r\n' ${eicarBytes().toString("latin1")}\r\n`;
    const file = compoundFile(
      vbaProjectStreams("_VBA_PROJECT_CUR/VBA", [{ name: "Module1", source }]),
    );
    expect(file.includes(eicarBytes())).toBe(false);
    const result = await createUnpackingScanner(createEicarScanner()).scan(
      artifactFromBytes(file, { filename: "book.xls" }),
    );
    expect(result.verdict).toBe("malicious");
    expect((result.metadata.unpack as UnpackReport).detected_in).toBe(
      "book.xls!/_VBA_PROJECT_CUR/VBA/Module1.bas",
    );
  });

  it("reads the macros of an encrypted .doc (its text is encrypted, its VBA storage is not)", async () => {
    const fib = Buffer.alloc(1024);
    fib.writeUInt16LE(0xa5ec, 0);
    fib.writeUInt16LE(0x0100, 10);
    const file = compoundFile({
      WordDocument: fib,
      ...vbaProjectStreams("Macros/VBA", [{ name: "Module1", source: macro }]),
    });
    const events = await walk(file, "locked.doc");
    expect(skips(events)).toEqual(["locked.doc!/WordDocument ENCRYPTED"]);
    expect(contentOf(events, "locked.doc!/Macros/VBA/Module1.bas")).toBe(macro);
    const result = await createUnpackingScanner(macroScanner).scan(
      artifactFromBytes(file, { filename: "locked.doc" }),
    );
    expect(result.verdict).toBe("malicious");
  });

  it("skips a project whose dir stream does not decompress, or a module whose stream is missing, as CORRUPT", async () => {
    const streams = vbaProjectStreams("VBA", [{ name: "Module1", source: macro }]);
    const badDir = compoundFile({ ...streams, "VBA/dir": Buffer.from([0x01, 0x00, 0xa0, 0x00]) });
    expect(skips(await walk(badDir, "a.bin"))).toEqual(["a.bin!/VBA/dir CORRUPT"]);
    const { "VBA/Module1": _module, ...withoutModule } = streams;
    expect(skips(await walk(compoundFile(withoutModule), "b.bin"))).toEqual([
      "b.bin!/VBA/Module1.bas CORRUPT",
    ]);
  });
});
