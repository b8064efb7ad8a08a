// The 7-Zip extractor (7z-wasm in a worker thread): 7z, RAR 4 and 5, ISO, CAB, xz, bzip2,
// LZMA-alone, lzip, and zip entries whose method zip.js lacks. Fixtures are written at test
// time by the real tools (see seven-zip-fixtures.ts). The worker runs from the build: run
// `pnpm build` in this package first.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { artifactFromBytes, createEicarScanner, ScanTimeoutError } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type ExtractedEntry, UnpackSkip } from "../src/extractors/extractor.js";
import { type SevenZipFormat, sevenZipEntries } from "../src/extractors/seven-zip-extractor.js";
import { sevenZipWorkersRunning } from "../src/extractors/seven-zip-run.js";
import { idleSevenZipWorkers } from "../src/extractors/seven-zip-worker-pool.js";
import {
  createUnpackingScanner,
  type UnpackEvent,
  type UnpackReport,
  unpack,
  unpackLimitsSchema,
} from "../src/index.js";
import {
  cabinet,
  compressed,
  eicarBytes,
  gzippedEicar,
  isoImage,
  paddedEicar,
  rarStored,
  requireBuiltWorker,
  scratchDirectory,
  sevenZipArchive,
  tool,
  withZipMethod,
  writeTree,
  zerosSevenZip,
} from "./seven-zip-fixtures.js";

type Walked = UnpackEvent & { content?: Buffer };

/** Every event of an unpack, members with their content. */
async function walk(
  bytes: Uint8Array,
  filename: string,
  options: Parameters<typeof unpack>[1] = {},
): Promise<Walked[]> {
  const events: Walked[] = [];
  for await (const event of unpack(artifactFromBytes(bytes, { filename }), options)) {
    if (event.kind === "member")
      events.push({ ...event, content: Buffer.from(await event.member.artifact.bytes()) });
    else events.push(event);
  }
  return events;
}
const members = (events: Walked[]) =>
  events.flatMap((event) => (event.kind === "member" ? [event.member.path] : []));
const skips = (events: Walked[]) =>
  events.flatMap((event) =>
    event.kind === "skipped"
      ? [`${event.path} ${event.code}${event.limit ? ` ${event.limit}` : ""}`]
      : [],
  );
const contentOf = (events: Walked[], path: string) =>
  events.find((event) => event.kind === "member" && event.member.path === path)?.content;
const report = (result: { metadata: Record<string, unknown> }) =>
  result.metadata.unpack as UnpackReport;

/** The entries `sevenZipEntries` gives for `bytes`, contents read. */
async function entriesOf(
  bytes: Buffer,
  name: string,
  format: SevenZipFormat,
  options: Parameters<typeof sevenZipEntries>[3] = {},
) {
  const context = {
    signal: new AbortController().signal,
    limits: unpackLimitsSchema.parse({}),
    remainingBytes: () => 2 ** 40,
  };
  const source = {
    artifact: artifactFromBytes(bytes, { filename: name }),
    size: bytes.length,
    name,
  };
  const entries: Array<
    | Exclude<ExtractedEntry, { kind: "file" }>
    | { kind: "file"; name: string; method?: string | undefined; content: Buffer }
  > = [];
  for await (const entry of sevenZipEntries(source, context, format, options)) {
    if (entry.kind !== "file") {
      entries.push(entry);
      continue;
    }
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of entry.open()) chunks.push(chunk);
    } catch (error) {
      // As the walker does: an entry whose content fails is that entry's skip.
      if (!(error instanceof UnpackSkip)) throw error;
      entries.push({ kind: "skipped", name: entry.name, code: error.code, reason: error.message });
      continue;
    }
    entries.push({
      kind: "file",
      name: entry.name,
      method: entry.method,
      content: Buffer.concat(chunks),
    });
  }
  return entries;
}

/**
 * Collects garbage until no 7-Zip run is left: runs whose entries a reader dropped without
 * returning them (the walker does, when a scan stops at a malicious member) are closed once
 * they are garbage.
 */
const settled = () =>
  vi.waitFor(
    async () => {
      (globalThis as { gc?: () => void }).gc?.();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(sevenZipWorkersRunning()).toBe(0);
    },
    { timeout: 10_000, interval: 50 },
  );

let scratch: ReturnType<typeof scratchDirectory>;
beforeAll(() => {
  requireBuiltWorker();
  scratch = scratchDirectory();
});
afterAll(() => scratch?.remove());

/**
 * One archive per format with EICAR inside, where the outer bytes do not show it: compressed
 * (padded, so that LZMA2 does not store 68 bytes as they are), or gzipped inside the formats
 * that store bytes as they are.
 */
const formats: Array<{
  format: string;
  filename: string;
  make: () => Buffer;
  /** Where EICAR is, and what that member holds. */
  found: string;
  content: () => Buffer;
}> = [
  {
    format: "7z",
    filename: "bundle.7z",
    make: () =>
      sevenZipArchive(scratch.path, "bundle.7z", {
        "docs/readme.txt": "read me",
        "tools/eicar.txt": paddedEicar(),
      }),
    found: "bundle.7z!/tools/eicar.txt",
    content: paddedEicar,
  },
  {
    format: "RAR 4",
    filename: "old.rar",
    make: () =>
      rarStored(4, [
        { name: "readme.txt", content: "read me" },
        { name: "tools/eicar.com.gz", content: gzippedEicar() },
      ]),
    found: "old.rar!/tools/eicar.com.gz!/eicar.com",
    content: eicarBytes,
  },
  {
    format: "RAR 5",
    filename: "new.rar",
    make: () =>
      rarStored(5, [
        { name: "readme.txt", content: "read me" },
        { name: "tools/eicar.com.gz", content: gzippedEicar() },
      ]),
    found: "new.rar!/tools/eicar.com.gz!/eicar.com",
    content: eicarBytes,
  },
  {
    format: "ISO",
    filename: "image.iso",
    make: () =>
      isoImage(scratch.path, { "readme.txt": "read me", "dir/eicar.com.gz": gzippedEicar() }),
    found: "image.iso!/dir/eicar.com.gz!/eicar.com",
    content: eicarBytes,
  },
  {
    format: "CAB (MSZIP)",
    filename: "files.cab",
    make: () =>
      cabinet(scratch.path, { "readme.txt": "read me", "eicar.txt": paddedEicar() }, true),
    found: "files.cab!/eicar.txt",
    content: paddedEicar,
  },
  {
    format: "xz",
    filename: "eicar.txt.xz",
    make: () => compressed("xz", paddedEicar()),
    found: "eicar.txt.xz!/eicar.txt",
    content: paddedEicar,
  },
  {
    format: "bzip2",
    filename: "eicar.txt.bz2",
    make: () => compressed("bzip2", paddedEicar()),
    found: "eicar.txt.bz2!/eicar.txt",
    content: paddedEicar,
  },
  {
    format: "LZMA-alone",
    filename: "eicar.txt.lzma",
    make: () => compressed("lzma", paddedEicar()),
    found: "eicar.txt.lzma!/eicar.txt",
    content: paddedEicar,
  },
  {
    format: "lzip",
    filename: "eicar.txt.lz",
    make: () => compressed("lzip", paddedEicar()),
    found: "eicar.txt.lz!/eicar.txt",
    content: paddedEicar,
  },
];

describe("7-Zip extractor: EICAR inside each format is found", () => {
  it.each(formats)(
    "$format: the member holds EICAR, and the scanner answers malicious with its path",
    async ({ filename, make, found, content }) => {
      const bytes = make();
      expect(bytes.includes(eicarBytes())).toBe(false);
      const events = await walk(bytes, filename);
      expect(skips(events)).toEqual([]);
      expect(members(events)).toContain(found);
      expect(contentOf(events, found)).toEqual(content());
      const scanner = createUnpackingScanner(createEicarScanner());
      const result = await scanner.scan(artifactFromBytes(bytes, { filename }));
      expect(result.verdict).toBe("malicious");
      expect(report(result).detected_in).toBe(found);
    },
    30_000,
  );

  it("names the members of a 7z by their paths, passes directories and links over, and gives each its method", async () => {
    const bytes = sevenZipArchive(
      scratch.path,
      "methods.7z",
      { "a/b/deep.txt": "deep", "top.txt": "top" },
      ["-m0=BZip2"],
    );
    const events = await walk(bytes, "methods.7z");
    expect(members(events).sort()).toEqual(["methods.7z!/a/b/deep.txt", "methods.7z!/top.txt"]);
    const methods = events.flatMap((event) =>
      event.kind === "member" ? [event.member.method] : [],
    );
    expect(methods).toEqual(["bzip2", "bzip2"]);
    expect(contentOf(events, "methods.7z!/a/b/deep.txt")?.toString()).toBe("deep");
  }, 30_000);

  it("decodes a 7z whose coder is BZip2 (-m0=BZip2)", async () => {
    const bytes = sevenZipArchive(scratch.path, "bzip2-coder.7z", { "eicar.txt": paddedEicar() }, [
      "-m0=BZip2",
    ]);
    const events = await walk(bytes, "bzip2-coder.7z");
    expect(contentOf(events, "bzip2-coder.7z!/eicar.txt")).toEqual(paddedEicar());
  }, 30_000);

  it("reads both file systems of an ISO/UDF bridge image: a file only UDF lists is found, the others once", async () => {
    const input = mkdtempSync(join(scratch.path, "bridge-"));
    writeTree(input, { "readme.txt": "read me", "only-udf.gz": gzippedEicar() });
    // -hide: left out of the ISO 9660 tree, still in the UDF one.
    tool("genisoimage", ["-quiet", "-udf", "-hide", "only-udf.gz", "-o", "bridge.iso", "."], {
      cwd: input,
    });
    const events = await walk(readFileSync(join(input, "bridge.iso")), "bridge.iso");
    expect(members(events).sort()).toEqual([
      "bridge.iso!/only-udf.gz",
      "bridge.iso!/only-udf.gz!/only-udf",
      "bridge.iso!/readme.txt",
    ]);
    expect(skips(events)).toEqual([]);
  });

  it("reads every stream of a multi-stream bzip2, and says so in its method (clamd reads only the first)", async () => {
    const one = compressed("bzip2", Buffer.from("first stream\n"));
    const two = compressed("bzip2", paddedEicar());
    const single = await walk(one, "one.bz2");
    expect(
      single.flatMap((event) => (event.kind === "member" ? [event.member.method] : [])),
    ).toEqual(["bzip2"]);
    const events = await walk(Buffer.concat([one, two]), "two.bz2");
    const member = events.find((event) => event.kind === "member");
    expect(member?.kind === "member" && member.member.method).toBe("bzip2 multi-stream");
    expect(contentOf(events, "two.bz2!/two")).toEqual(
      Buffer.concat([Buffer.from("first stream\n"), paddedEicar()]),
    );
  });

  it("reads every member of a multi-member lzip, and the data after it as a hidden member", async () => {
    const first = compressed("lzip", Buffer.from("first member\n"));
    const second = compressed("lzip", Buffer.from("second member\n"));
    const trailing = Buffer.from("not lzip: trailing data");
    const events = await walk(Buffer.concat([first, second, trailing]), "two.lz");
    expect(contentOf(events, "two.lz!/two")?.toString()).toBe("first member\nsecond member\n");
    const hidden = events.find(
      (event) => event.kind === "member" && event.member.path === "two.lz!/(trailing data)",
    );
    expect(hidden?.kind === "member" && hidden.member.hidden).toBe(true);
    expect(hidden?.content).toEqual(trailing);
  }, 30_000);

  it("comes out with data appended after a 7z archive as a hidden member", async () => {
    const archive = sevenZipArchive(scratch.path, "appended.7z", { "a.txt": "a" });
    const appended = compressed("xz", paddedEicar());
    const events = await walk(Buffer.concat([archive, appended]), "appended.7z");
    expect(members(events)).toEqual([
      "appended.7z!/a.txt",
      "appended.7z!/(trailing data)",
      "appended.7z!/(trailing data)!/content",
    ]);
    expect(contentOf(events, "appended.7z!/(trailing data)!/content")).toEqual(paddedEicar());
  }, 30_000);
});

describe("7-Zip extractor: what it cannot look into is skipped, never benign", () => {
  it("answers an encrypted 7z ENCRYPTED, with and without encrypted headers (-mhe=on)", async () => {
    const files = { "eicar.txt": paddedEicar(), "readme.txt": "read me" };
    const entries = sevenZipArchive(scratch.path, "entries.7z", files, ["-pinfected"]);
    expect(skips(await walk(entries, "entries.7z")).sort()).toEqual([
      "entries.7z!/eicar.txt ENCRYPTED",
      "entries.7z!/readme.txt ENCRYPTED",
    ]);
    const headers = sevenZipArchive(scratch.path, "headers.7z", files, ["-pinfected", "-mhe=on"]);
    expect(skips(await walk(headers, "headers.7z"))).toEqual(["headers.7z ENCRYPTED"]);
    const scanner = createUnpackingScanner(createEicarScanner());
    for (const [bytes, filename] of [
      [entries, "entries.7z"],
      [headers, "headers.7z"],
    ] as const) {
      const result = await scanner.scan(artifactFromBytes(bytes, { filename }));
      expect(result.verdict).toBe("unknown");
      expect(result.metadata.comments?.[0]).toBe("SKIPPED:ENCRYPTED");
    }
  }, 30_000);

  it("answers RAR 4 encrypted files and encrypted headers ENCRYPTED", async () => {
    const files = rarStored(4, [
      { name: "plain.txt", content: "plain" },
      { name: "secret.exe", content: randomBytes(64), encrypted: true },
    ]);
    const events = await walk(files, "files.rar");
    expect(members(events)).toEqual(["files.rar!/plain.txt"]);
    expect(skips(events)).toEqual(["files.rar!/secret.exe ENCRYPTED"]);
    const headers = rarStored(4, [], { encryptedHeaders: true });
    expect(skips(await walk(headers, "headers.rar"))).toEqual(["headers.rar ENCRYPTED"]);
  }, 30_000);

  it("answers a truncated 7z CORRUPT", async () => {
    const whole = sevenZipArchive(scratch.path, "whole.7z", { "random.bin": randomBytes(200_000) });
    const events = await walk(whole.subarray(0, 100_000), "cut.7z");
    expect(skips(events)).toEqual(["cut.7z CORRUPT"]);
    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(whole.subarray(0, 100_000)));
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:CORRUPT");
  }, 30_000);

  it("answers truncated streams CORRUPT (xz, bzip2, lzip), and an lzip whose CRC does not match", async () => {
    const content = randomBytes(300_000);
    for (const [command, filename] of [
      ["xz", "cut.xz"],
      ["bzip2", "cut.bz2"],
      ["lzip", "cut.lz"],
    ] as const) {
      const whole = compressed(command, content);
      const events = await walk(whole.subarray(0, whole.length - 5_000), filename);
      expect(skips(events).length, filename).toBeGreaterThan(0);
      expect(
        skips(events).every((skip) => skip.endsWith(" CORRUPT")),
        skips(events).join(),
      ).toBe(true);
    }
    const lzip = compressed("lzip", Buffer.from("some text\n"));
    lzip.writeUInt32LE(lzip.readUInt32LE(lzip.length - 20) ^ 1, lzip.length - 20);
    const events = await walk(lzip, "crc.lz");
    expect(skips(events)).toEqual(["crc.lz!/crc CORRUPT"]);
  }, 30_000);
});

describe("7-Zip extractor: bounded", () => {
  /** Walks `bytes`, expecting one LIMITS maxMemberBytes skip in bounded time and memory. */
  async function stoppedAtMaxMemberBytes(
    label: string,
    bytes: Buffer,
    filename: string,
    options = {},
  ) {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const started = Date.now();
    try {
      const events = await walk(bytes, filename, options);
      expect(skips(events)).toEqual([`${filename}!/zeros.bin LIMITS maxMemberBytes`]);
    } finally {
      clearInterval(sampler);
    }
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(10_000);
    expect(peak - before).toBeLessThan(300 * 1024 * 1024);
    console.log(
      `${label}: LIMITS after ${elapsed} ms, RSS +${((peak - before) / 2 ** 20).toFixed(0)} MiB`,
    );
  }

  it("stops a 10 GiB member of zeros at maxMemberBytes in seconds and bounded memory", async () => {
    const bytes = zerosSevenZip(5_120);
    expect(bytes.length).toBeLessThan(3 * 1024 * 1024);
    await stoppedAtMaxMemberBytes("10 GiB of zeros", bytes, "zeros.7z");
  }, 30_000);

  it("stops a 1 GiB member of zeros in a zip with LZMA (7-Zip's path) at maxMemberBytes, in bounded memory", async () => {
    // 1 GiB, not 10: 7zz needs ~50 s to write 10 GiB of LZMA here, ~4 s for 1 GiB; the bound
    // (maxMemberBytes, 100 MiB) stops it at a tenth either way.
    const input = mkdtempSync(join(scratch.path, "zeros-"));
    tool("truncate", ["-s", "1G", "zeros.bin"], { cwd: input });
    tool("7zz", ["a", "-bd", "-tzip", "-mm=LZMA", "-mx=1", "zeros.zip", "zeros.bin"], {
      cwd: input,
    });
    const bytes = readFileSync(join(input, "zeros.zip"));
    rmSync(input, { recursive: true, force: true });
    expect(bytes.length).toBeLessThan(1024 * 1024);
    await stoppedAtMaxMemberBytes("1 GiB of zeros in a zip (LZMA)", bytes, "zeros.zip", {
      limits: { maxRatio: 1_000_000 },
    });
  }, 60_000);

  it("goes on after an entry past maxMemberBytes (solid or not), and stops at maxTotalBytes", async () => {
    const files = { "a-big.bin": Buffer.alloc(3 * 1024 * 1024), "b-eicar.txt": paddedEicar() };
    for (const solid of ["-ms=on", "-ms=off"]) {
      const bytes = sevenZipArchive(scratch.path, `big${solid}.7z`, files, [solid]);
      const events = await walk(bytes, "big.7z", { limits: { maxMemberBytes: 1024 * 1024 } });
      expect(skips(events), solid).toEqual(["big.7z!/a-big.bin LIMITS maxMemberBytes"]);
      expect(contentOf(events, "big.7z!/b-eicar.txt"), solid).toEqual(paddedEicar());
    }
    const two = sevenZipArchive(scratch.path, "two.7z", {
      "one.bin": Buffer.alloc(1024 * 1024, 1),
      "two.bin": Buffer.alloc(1024 * 1024, 2),
    });
    const events = await walk(two, "two.7z", { limits: { maxTotalBytes: 1536 * 1024 } });
    expect(members(events)).toHaveLength(1);
    expect(skips(events)).toHaveLength(1);
    expect(skips(events)[0]).toMatch(/ LIMITS maxTotalBytes$/);
  }, 30_000);

  it("ends a slow extraction at a 2 s deadline with ScanTimeoutError, the worker killed", async () => {
    const bytes = zerosSevenZip(5_120);
    await settled();
    const started = Date.now();
    await expect(
      walk(bytes, "zeros.7z", {
        deadline: Date.now() + 2_000,
        temporaryDirectory: scratch.path,
        limits: { maxMemberBytes: 2 ** 40, maxTotalBytes: 2 ** 40, maxRatio: 1e12 },
      }),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
    expect(Date.now() - started).toBeLessThan(4_000);
    // Closed when the walk threw, not later by a collection.
    expect(sevenZipWorkersRunning()).toBe(0);
  }, 30_000);
});

describe("7-Zip extractor: no worker is left behind", () => {
  it("keeps at most two idle workers between containers: threads do not grow with containers", async () => {
    const threads = () => readdirSync("/proc/self/task").length;
    const bytes = compressed("xz", Buffer.from("small content"));
    await walk(bytes, "warm.xz");
    const before = threads();
    for (let round = 0; round < 20; round += 1)
      expect(members(await walk(bytes, "small.xz"))).toEqual(["small.xz!/small"]);
    // The last worker is kept once it reports itself idle, a message after the walk returned.
    await vi.waitFor(() => expect(idleSevenZipWorkers()).toBeGreaterThanOrEqual(1));
    expect(idleSevenZipWorkers()).toBeLessThanOrEqual(2);
    expect(threads() - before).toBeLessThan(10);
  }, 30_000);

  it("closes the run of entries a reader drops without returning them, once they are garbage", async () => {
    const bytes = sevenZipArchive(scratch.path, "dropped.7z", {
      "a.txt": "a",
      "b.txt": "b",
    });
    await settled();
    await (async () => {
      const context = {
        signal: new AbortController().signal,
        limits: unpackLimitsSchema.parse({}),
        remainingBytes: () => 2 ** 40,
      };
      const source = { artifact: artifactFromBytes(bytes), size: bytes.length, name: "dropped.7z" };
      const entries = sevenZipEntries(source, context, "7z");
      expect((await entries.next()).value).toMatchObject({ kind: "file", name: "a.txt" });
    })();
    expect(sevenZipWorkersRunning()).toBe(1);
    await settled();
  }, 30_000);

  it("leaves none running after a scan that stops at the first malicious member", async () => {
    const bytes = sevenZipArchive(scratch.path, "first.7z", {
      "a-eicar.txt": paddedEicar(),
      "b.txt": "b ".repeat(1000),
    });
    await settled();
    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(bytes, { filename: "first.7z" }));
    expect(report(result).detected_in).toBe("first.7z!/a-eicar.txt");
    // Closed when the scan stopped walking, not later by a collection.
    expect(sevenZipWorkersRunning()).toBe(0);
  }, 30_000);

  it("leaves none running after a caller stops iterating unpack() early", async () => {
    const bytes = sevenZipArchive(scratch.path, "early.7z", {
      "a.txt": "a ".repeat(1000),
      "b.bin": randomBytes(4 * 1024 * 1024),
    });
    await settled();
    for await (const event of unpack(artifactFromBytes(bytes, { filename: "early.7z" }))) {
      if (event.kind === "member") break;
    }
    expect(sevenZipWorkersRunning()).toBe(0);
  }, 30_000);
});

describe("sevenZipEntries(..., 'zip'): zip entries whose method zip.js lacks", () => {
  it.each([
    ["LZMA", "lzma"],
    ["PPMd", "ppmd"],
    ["BZip2", "bzip2"],
    ["Deflate64", "deflate64"],
  ])(
    "decodes entries stored with %s",
    async (method, name) => {
      const zip = sevenZipArchive(
        scratch.path,
        `${name}.zip`,
        { "eicar.txt": paddedEicar(), "notes.txt": "notes ".repeat(2_000) },
        ["-tzip", `-mm=${method}`],
      );
      const entries = await entriesOf(zip, `${name}.zip`, "zip");
      expect(entries).toEqual([
        { kind: "file", name: "eicar.txt", method: name, content: paddedEicar() },
        {
          kind: "file",
          name: "notes.txt",
          method: name,
          content: Buffer.from("notes ".repeat(2_000)),
        },
      ]);
    },
    30_000,
  );

  it("extracts only the entries selected, and answers a method 7-Zip lacks UNSUPPORTED", async () => {
    const zip = sevenZipArchive(
      scratch.path,
      "mixed.zip",
      { "a.txt": "a ".repeat(500), "odd.bin": "odd ".repeat(500), "z.txt": "z ".repeat(500) },
      ["-tzip", "-mm=Deflate"],
    );
    const selected = await entriesOf(zip, "mixed.zip", "zip", {
      select: (entry) => entry.path === "z.txt",
    });
    expect(selected.map((entry) => entry.name)).toEqual(["z.txt"]);
    const odd = await entriesOf(withZipMethod(zip, "odd.bin", 19), "odd.zip", "zip");
    expect(
      odd.map((entry) => `${entry.name} ${entry.kind === "skipped" ? entry.code : "file"}`),
    ).toEqual(["a.txt file", "odd.bin UNSUPPORTED", "z.txt file"]);
  }, 30_000);
});
