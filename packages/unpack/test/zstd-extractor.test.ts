import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { artifactFromBytes, createEicarScanner, ScanTimeoutError } from "@engine/core";
import { describe, expect, it } from "vitest";
import {
  createUnpackingScanner,
  type UnpackEvent,
  type UnpackReport,
  unpack,
} from "../src/index.js";
import { eicarBytes, tarOf } from "./fixtures.js";

/** `input` compressed by the zstd command line with `options`. */
function zstd(input: Uint8Array | string, options: string[] = ["-19"]): Buffer {
  return execFileSync("zstd", ["-q", ...options, "-c"], { input });
}

/**
 * EICAR compressed so that its string is not in the compressed bytes: its pieces come first,
 * so zstd writes it as matches (the outer scan must not find it; the member's must).
 */
function hiddenEicar(): Buffer {
  const eicar = eicarBytes().toString("latin1");
  const pieces: string[] = [];
  for (let at = 0; at < eicar.length; at += 6) pieces.push(eicar.slice(at, at + 8));
  const text = `${pieces.reverse().join("|")}\n${eicar}\n`;
  const compressed = zstd(text);
  expect(compressed.includes(eicarBytes())).toBe(false);
  return compressed;
}

/** Every event of an unpack, with each member's content. */
async function walk(
  bytes: Uint8Array,
  options: Parameters<typeof unpack>[1] = {},
  filename = "root.bin",
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

/** Peak resident memory growth (bytes) and time (ms) while `work` runs, sampled every 5 ms. */
async function measured<T>(work: () => Promise<T>) {
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const started = Date.now();
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growth: peak - before, milliseconds: Date.now() - started };
  } finally {
    clearInterval(sampler);
  }
}

/** A zstd frame header: single-segment with a 4-byte declared size, or a window and no size. */
function frameHeader(options: { declared?: number; windowLog?: number; dictionary?: number }) {
  const magic = [0x28, 0xb5, 0x2f, 0xfd];
  if (options.declared !== undefined) {
    const size = Buffer.alloc(4);
    size.writeUInt32LE(options.declared);
    return Buffer.from([...magic, 0xa0, ...size]);
  }
  const windowDescriptor = ((options.windowLog ?? 20) - 10) << 3;
  if (options.dictionary !== undefined)
    return Buffer.from([...magic, 0x01, windowDescriptor, options.dictionary]);
  return Buffer.from([...magic, 0x00, windowDescriptor]);
}

/** A zstd block header: `type` 0 raw, 1 RLE, 2 compressed; `size` its content bytes. */
function blockHeader(type: number, size: number, last: boolean): Buffer {
  const value = (size << 3) | (type << 1) | (last ? 1 : 0);
  return Buffer.from([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff]);
}

describe("zstd: decoded with fzstd, block by block", () => {
  it("finds EICAR inside a zstd stream with unpack(), named after the stream", async () => {
    const events = await walk(hiddenEicar(), {}, "eicar.txt.zst");
    expect(skips(events)).toEqual([]);
    expect(members(events)).toEqual(["eicar.txt.zst!/eicar.txt"]);
    expect(contentOf(events, "eicar.txt.zst!/eicar.txt")?.includes(eicarBytes())).toBe(true);
  });

  it("answers malicious through createUnpackingScanner, with the member's path", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(hiddenEicar(), { filename: "mail.zst" }));
    expect(result.verdict).toBe("malicious");
    expect((result.metadata.unpack as UnpackReport).detected_in).toBe("mail.zst!/mail");
    await scanner.close?.();
  });

  it("decodes every frame of a multi-frame file, passing over skippable frames", async () => {
    const first = randomBytes(200_000);
    const second = Buffer.from("second frame ".repeat(5_000));
    const skippable = Buffer.concat([
      Buffer.from([0x5e, 0x2a, 0x4d, 0x18]),
      Buffer.from([9, 0, 0, 0]),
      Buffer.from("metadata!"),
    ]);
    const file = Buffer.concat([zstd(first, ["-3"]), skippable, zstd(second), skippable]);
    const events = await walk(file, {}, "two.zst");
    expect(skips(events)).toEqual([]);
    expect(contentOf(events, "two.zst!/two")?.equals(Buffer.concat([first, second]))).toBe(true);
  });

  it("identifies a stream that starts with a skippable frame (pzstd's), named or not", async () => {
    const parallel = execFileSync("pzstd", ["-q", "-p", "2", "-c"], { input: hiddenEicar() });
    expect(parallel.readUInt32LE(0) & 0xfffffff0).toBe(0x184d2a50);
    for (const filename of ["eicar.zst", "upload.bin"]) {
      const scanner = createUnpackingScanner(createEicarScanner());
      const result = await scanner.scan(artifactFromBytes(parallel, { filename }));
      expect(result.verdict).toBe("malicious");
    }
  });

  it("decodes a file written from a pipe (no declared size) and a tar inside", async () => {
    const tar = await tarOf({ "readme.txt": "hello", "data.bin": randomBytes(300_000) });
    const streamed = execFileSync("sh", ["-c", "cat | zstd -q -3 -c | cat"], { input: tar });
    const events = await walk(streamed, {}, "bundle.tar.zst");
    expect(skips(events)).toEqual([]);
    expect(members(events)).toEqual([
      "bundle.tar.zst!/bundle.tar",
      "bundle.tar.zst!/bundle.tar!/readme.txt",
      "bundle.tar.zst!/bundle.tar!/data.bin",
    ]);
  });

  it("decodes what the zstd command writes, whatever its options (and an empty stream)", async () => {
    const data = Buffer.concat([
      randomBytes(300_000),
      Buffer.from("a line of text that repeats\n".repeat(40_000)),
      randomBytes(100_000),
    ]);
    const optionSets = [
      ["-1"],
      ["-19"],
      ["--ultra", "-22", `--stream-size=${data.length}`],
      ["-T2", "-3", "--rsyncable"],
      ["--no-check", "-5"],
      ["-3", `--stream-size=${data.length}`, "--no-content-size"],
    ];
    for (const options of optionSets) {
      const events = await walk(zstd(data, options), {}, "data.zst");
      expect({ options, skips: skips(events) }).toEqual({ options, skips: [] });
      expect(contentOf(events, "data.zst!/data")?.equals(data)).toBe(true);
    }
    const empty = await walk(zstd(Buffer.alloc(0)), {}, "empty.zst");
    expect(skips(empty)).toEqual([]);
    expect(contentOf(empty, "empty.zst!/empty")?.length).toBe(0);
  });

  it("answers a truncated stream CORRUPT, wherever it is cut", async () => {
    const whole = zstd(randomBytes(300_000), ["-3"]);
    for (const length of [5, 12, 100_000, whole.length - 4, whole.length - 1]) {
      expect(skips(await walk(whole.subarray(0, length)))).toEqual(["root.bin!/content CORRUPT"]);
    }
    const garbage = Buffer.concat([whole, Buffer.from("not a frame")]);
    expect(skips(await walk(garbage))).toEqual(["root.bin!/content CORRUPT"]);
  });

  it("answers a frame needing a dictionary UNSUPPORTED", async () => {
    const frame = Buffer.concat([
      frameHeader({ dictionary: 7 }),
      blockHeader(0, 2, true),
      Buffer.from("hi"),
    ]);
    expect(skips(await walk(frame))).toEqual(["root.bin!/content UNSUPPORTED"]);
  });
});

describe("zstd bombs end LIMITS, within bounds", () => {
  // 300 MiB of zeros in about 10 kB (zstd -3 from a pipe: 2 MiB window, no declared size).
  const bomb = execFileSync("sh", ["-c", "head -c 300M /dev/zero | zstd -q -3 -c"]);

  it("stops a bomb at the ratio (defaults), at the first bytes past it", async () => {
    expect(bomb.length).toBeLessThan(20_000);
    const { result, growth, milliseconds } = await measured(() => walk(bomb));
    expect(skips(result)).toEqual(["root.bin!/content LIMITS maxRatio"]);
    expect(milliseconds).toBeLessThan(5_000);
    expect(growth).toBeLessThan(256 * 1024 * 1024);
  });

  it("stops it at maxMemberBytes when the ratio is lifted, never holding it whole", async () => {
    const { result, growth, milliseconds } = await measured(() =>
      walk(bomb, { limits: { maxRatio: 1e9, maxMemberBytes: 64 * 1024 * 1024 } }),
    );
    expect(skips(result)).toEqual(["root.bin!/content LIMITS maxMemberBytes"]);
    expect(milliseconds).toBeLessThan(10_000);
    // Past memoryLimitBytes (8 MiB) the member is spooled to a temp file: memory stays small.
    expect(growth).toBeLessThan(256 * 1024 * 1024);
  });

  it("refuses a single-segment frame declaring 2 GB before fzstd allocates it", async () => {
    // fzstd allocates a single-segment frame's declared size as its window, and moves it per block.
    const blocks = Array.from({ length: 64 }, (_, index) =>
      Buffer.concat([blockHeader(1, 128 * 1024, index === 63), Buffer.from("A")]),
    );
    const frame = Buffer.concat([frameHeader({ declared: 2_000_000_000 }), ...blocks]);
    const { result, growth, milliseconds } = await measured(() => walk(frame));
    expect(skips(result)).toEqual(["root.bin!/content LIMITS maxMemberBytes"]);
    expect(milliseconds).toBeLessThan(1_000);
    expect(growth).toBeLessThan(128 * 1024 * 1024);
  });

  it("refuses a window larger than maxMemberBytes", async () => {
    const frame = Buffer.concat([
      frameHeader({ windowLog: 30 }),
      blockHeader(0, 1, true),
      Buffer.from("x"),
    ]);
    expect(skips(await walk(frame))).toEqual(["root.bin!/content LIMITS maxMemberBytes"]);
  });

  it("stops tiny blocks with a large window (fzstd shifts its window per block) by their cost", async () => {
    // 100,000 one-byte blocks with a 16 MiB window: 100 kB out, 1.6 TB of window shifting.
    const blocks = Array.from({ length: 100_000 }, (_, index) =>
      Buffer.concat([blockHeader(0, 1, index === 99_999), Buffer.from("x")]),
    );
    const stream = Buffer.concat([frameHeader({ windowLog: 24 }), ...blocks]);
    const { result, milliseconds } = await measured(() =>
      walk(stream, { limits: { maxMemberBytes: 16 * 1024 * 1024 } }),
    );
    expect(skips(result)).toEqual(["root.bin!/content LIMITS maxMemberBytes"]);
    expect(milliseconds).toBeLessThan(5_000);
  });

  it("ends at the deadline with ScanTimeoutError when the limits are lifted", async () => {
    const huge = { maxRatio: 1e9, maxMemberBytes: 2 ** 40, maxTotalBytes: 2 ** 40 };
    const started = Date.now();
    await expect(walk(bomb, { deadline: Date.now() + 200, limits: huge })).rejects.toBeInstanceOf(
      ScanTimeoutError,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
