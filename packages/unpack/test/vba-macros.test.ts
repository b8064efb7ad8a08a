import { randomBytes } from "node:crypto";
import {
  artifactFromBytes,
  createEicarScanner,
  defineScanner,
  ScanTimeoutError,
} from "@engine/core";
import CFB from "cfb";
import { describe, expect, it } from "vitest";
import { UnpackSkip } from "../src/extractors/extractor.js";
import { vbaDecompress } from "../src/extractors/vba-decompression.js";
import { VbaDirReader } from "../src/extractors/vba-project.js";
import {
  createUnpackingScanner,
  type UnpackEvent,
  type UnpackReport,
  unpack,
} from "../src/index.js";
import { eicarBytes, leastStall } from "./fixtures.js";

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
  const { project, moduleRecords } = dirParts(modules);
  return Buffer.concat([project, moduleRecords, dirRecord(0x0010)]);
}

/** The records of a `dir` stream (decompressed): the project's, then the modules'. */
function dirParts(modules: Array<ModuleFixture & { offset: number }>) {
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
  return { project: Buffer.concat(project), moduleRecords: Buffer.concat(moduleRecords) };
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
async function walk(
  bytes: Uint8Array,
  filename: string,
  options: Parameters<typeof unpack>[1] = {},
) {
  const events: Array<UnpackEvent & { content?: Buffer }> = [];
  for await (const event of unpack(artifactFromBytes(bytes, { filename }), options)) {
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

/** `count` copies of a 4096-byte chunk, compressed (once) as an MS-OVBA container. */
function repeatedChunks(chunk: Buffer, count: number): Buffer {
  const compressed = vbaCompress(chunk).subarray(1);
  return Buffer.concat([Buffer.from([1]), ...Array.from({ length: count }, () => compressed)]);
}

/**
 * A compressed `dir` stream listing `modules` after a PROJECTDOCSTRING record (not read by the
 * extractor) of about `paddingChunks` × 4096 zero bytes, compressed chunk by chunk.
 */
function paddedDir(modules: Array<ModuleFixture & { offset: number }>, paddingChunks: number) {
  const { project, moduleRecords } = dirParts(modules);
  const head = Buffer.alloc(Math.ceil((project.length + 6) / 4096) * 4096);
  project.copy(head);
  head.writeUInt16LE(0x0005, project.length);
  head.writeUInt32LE(head.length - project.length - 6 + paddingChunks * 4096, project.length + 2);
  const padding = repeatedChunks(Buffer.alloc(4096), paddingChunks).subarray(1);
  const tail = vbaCompress(Buffer.concat([moduleRecords, dirRecord(0x0010)])).subarray(1);
  return Buffer.concat([vbaCompress(head), padding, tail]);
}

describe("VBA macros: a dir stream is read within the walk's bounds, off the event loop (review F10)", () => {
  /** MODULESTREAMNAME "m", MODULEOFFSET 0, MODULETERMINATOR: a module in 23 bytes. */
  const tinyModule = Buffer.concat([
    dirRecord(0x001a, "m"),
    dirRecord(0x0031, u32(0)),
    dirRecord(0x002b),
  ]);

  it("VbaDirReader stops at the module past maxModules, and at the end record", () => {
    const reader = new VbaDirReader(3);
    const dir = Buffer.concat([
      dirParts([]).project,
      ...Array.from({ length: 10 }, () => tinyModule),
    ]);
    let pushed = 0;
    for (let at = 0; at < dir.length && !reader.push(dir.subarray(at, at + 7)); at += 7)
      pushed += 1;
    const listing = reader.end();
    expect(listing.more).toBe(true);
    expect(listing.modules.map((module) => module.streamName)).toEqual(["m", "m", "m"]);
    // Read as far as the fourth module's terminator, not further.
    expect((pushed + 1) * 7).toBeLessThan(dirParts([]).project.length + 4 * 23 + 7);
    const ended = new VbaDirReader(100);
    expect(ended.push(Buffer.concat([tinyModule, dirRecord(0x0010), tinyModule]))).toBe(true);
    expect(ended.end()).toEqual({
      modules: [{ name: "m", streamName: "m", sourceOffset: 0, kind: "procedural" }],
      more: false,
    });
    const cut = new VbaDirReader(100);
    cut.push(Buffer.concat([tinyModule, dirRecord(0x0005, "documentation").subarray(0, 10)]));
    expect(() => cut.end()).toThrow(/record \(0x5\) of 13 bytes past its end/);
  });

  it("reads at most maxMembers modules of a dir stream listing 200,000, the rest a LIMITS skip naming maxMembers", async () => {
    const records = Buffer.concat([
      dirParts([]).project,
      ...Array.from({ length: 200_000 }, () => tinyModule),
      dirRecord(0x0010),
    ]);
    const compressed: Buffer[] = [Buffer.from([1])];
    const byContent = new Map<string, Buffer>();
    for (let at = 0; at < records.length; at += 4096) {
      const chunk = records.subarray(at, at + 4096);
      const key = chunk.toString("latin1");
      if (!byContent.has(key)) byContent.set(key, vbaCompress(chunk).subarray(1));
      compressed.push(byContent.get(key) as Buffer);
    }
    const file = compoundFile({
      "VBA/dir": Buffer.concat(compressed),
      "VBA/m": vbaCompress(Buffer.from("Sub A()\r\n")),
    });
    const events = await walk(file, "x.doc", { limits: { maxMembers: 100 } });
    const limitSkips = events.flatMap((event) =>
      event.kind === "skipped" && event.code === "LIMITS" ? [`${event.path} ${event.limit}`] : [],
    );
    expect(limitSkips[0]).toBe("x.doc!/VBA/dir maxMembers");
    const modules = events.filter(
      (event) => event.kind === "member" && event.member.path.endsWith(".bas"),
    );
    expect(modules.length).toBeGreaterThan(0);
    expect(modules.length).toBeLessThanOrEqual(100);
  });

  it("bounds a dir stream's decompressed bytes by maxMemberBytes and what is left of maxTotalBytes (LIMITS)", async () => {
    const source = vbaCompress(Buffer.from(macro, "latin1"));
    const streams = {
      "VBA/dir": paddedDir([{ name: "Module1", source: macro, offset: 0 }], 512),
      "VBA/Module1": source,
    };
    const file = compoundFile(streams);
    const limitSkips = (events: Awaited<ReturnType<typeof walk>>) =>
      events.flatMap((event) =>
        event.kind === "skipped" ? [`${event.path} ${event.code} ${event.limit}`] : [],
      );
    // 2 MiB of dir stream: read within the default bounds.
    expect(contentOf(await walk(file, "a.doc"), "a.doc!/VBA/Module1.bas")).toBe(macro);
    expect(
      limitSkips(await walk(file, "b.doc", { limits: { maxTotalBytes: 1024 * 1024 } })),
    ).toEqual(["b.doc!/VBA/dir LIMITS maxTotalBytes"]);
    expect(
      limitSkips(await walk(file, "c.doc", { limits: { maxMemberBytes: 1024 * 1024 } })),
    ).toEqual(["c.doc!/VBA/dir LIMITS maxMemberBytes"]);
  });

  it("ends a walk inside a 96 MiB dir stream at the deadline (ScanTimeoutError)", async () => {
    const file = compoundFile({
      "VBA/dir": paddedDir([{ name: "Module1", source: macro, offset: 0 }], 24 * 1024),
      "VBA/Module1": vbaCompress(Buffer.from(macro, "latin1")),
    });
    const started = performance.now();
    const run = walk(file, "x.doc", { deadline: Date.now() + 100 });
    await expect(run).rejects.toBeInstanceOf(ScanTimeoutError);
    const took = performance.now() - started;
    console.log(
      `a 96 MiB dir stream, deadline 100 ms: ScanTimeoutError after ${Math.round(took)} ms`,
    );
    // Before: the dir stream was decompressed whole on the event loop first (~0.6 s here).
    expect(took).toBeLessThan(400);
  });

  it("decompresses a 64 MiB dir stream and a 7 MiB module without holding the event loop", async () => {
    const line = Buffer.from("    x = x + 1\r\n");
    const text = Buffer.alloc(4096);
    for (let at = 0; at < 4096; at += line.length) line.copy(text, at);
    const file = compoundFile({
      "VBA/dir": paddedDir([{ name: "Module1", source: "", offset: 0 }], 16 * 1024),
      "VBA/Module1": repeatedChunks(text, 7 * 256),
    });
    let sourceBytes = 0;
    const stall = await leastStall(
      async () => {
        for (const event of await walk(file, "x.doc"))
          if (event.kind === "member" && event.member.path === "x.doc!/VBA/Module1.bas")
            sourceBytes = event.member.size;
      },
      { boundMs: 100 },
    );
    console.log(
      `a 64 MiB dir stream and a 7 MiB module: the event loop held ${Math.round(stall)} ms at most`,
    );
    expect(sourceBytes).toBe(7 * 1024 * 1024);
    // Before: ~0.4 s at once for the dir stream, then the module's source in microtasks.
    expect(stall).toBeLessThan(100);
  });
});
