import { artifactFromBytes, createEicarScanner, ScanTimeoutError } from "@engine/core";
import { describe, expect, it } from "vitest";
import { createUnpackingScanner, type UnpackReport } from "../src/index.js";
import { leastStall } from "./fixtures.js";
import {
  eicarPadded,
  eicarPath,
  extraFieldBomb,
  handZip,
  memberPaths,
  overlapBomb,
  sharedHeaderBomb,
  skipLines,
  toolZip,
  walkEvents,
} from "./zip-fixtures.js";

const report = (result: { metadata: Record<string, unknown> }) =>
  result.metadata.unpack as UnpackReport;

/** EICAR inside `levels` zips, each the only member of the next (`level1.zip` innermost). */
function zipLayers(levels: number): Buffer {
  let bytes = handZip([{ name: "eicar.com", content: eicarPadded() }]);
  for (let level = 2; level <= levels; level += 1)
    bytes = handZip([{ name: `level${level - 1}.zip`, content: bytes }]);
  return bytes;
}

/**
 * 42.zip's shape: `layers` levels of 16 identical zips each (16^layers leaves), the leaf
 * `leafBytes` zeros.
 */
function fortyTwoStyle(layers: number, leafBytes: number): Buffer {
  let bytes = handZip([{ name: "0.dll", content: Buffer.alloc(leafBytes) }]);
  for (let layer = 0; layer < layers; layer += 1)
    bytes = handZip(
      Array.from({ length: 16 }, (_, index) => ({ name: `lib ${index}.zip`, content: bytes })),
    );
  return bytes;
}

describe("zip: recursion is bounded", () => {
  it("finds EICAR 17 zips deep, and answers 18 LIMITS (maxDepth)", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    const deep = await scanner.scan(artifactFromBytes(zipLayers(17), { filename: "deep.zip" }));
    expect(deep.verdict).toBe("malicious");
    expect(report(deep).detected_in).toBe(
      `deep.zip!/${Array.from({ length: 16 }, (_, index) => `level${16 - index}.zip`).join("!/")}!/eicar.com`,
    );
    const deeper = await scanner.scan(artifactFromBytes(zipLayers(18), { filename: "deeper.zip" }));
    expect(deeper.verdict).toBe("unknown");
    expect(deeper.metadata.comments?.[0]).toBe("SKIPPED:LIMITS");
    const events = await walkEvents(zipLayers(18), {}, "deeper.zip");
    expect(skipLines(events)).toHaveLength(1);
    expect(skipLines(events)[0]).toMatch(/!\/level1\.zip LIMITS maxDepth$/);
  });

  it("ends a 42.zip-style bomb (16 copies a layer) within bounds: duplicates scanned once, limits for the rest", async () => {
    const bomb = fortyTwoStyle(4, 1024 * 1024); // 65,536 leaves of 1 MiB: 64 GiB unpacked
    const started = Date.now();
    const events = await walkEvents(bomb, {}, "42.zip");
    const elapsed = Date.now() - started;
    // One zip per layer and one leaf are new; the other 15 of each 16 are duplicates.
    expect(memberPaths(events)).toEqual([
      "42.zip!/lib 0.zip",
      "42.zip!/lib 0.zip!/lib 0.zip",
      "42.zip!/lib 0.zip!/lib 0.zip!/lib 0.zip",
      "42.zip!/lib 0.zip!/lib 0.zip!/lib 0.zip!/lib 0.zip",
      "42.zip!/lib 0.zip!/lib 0.zip!/lib 0.zip!/lib 0.zip!/0.dll",
    ]);
    expect(skipLines(events)).toEqual([]);
    expect(elapsed).toBeLessThan(5_000);
    // Leaves past maxMemberBytes: LIMITS, never benign.
    const capped = await createUnpackingScanner(createEicarScanner(), {
      limits: { maxMemberBytes: 512 * 1024 },
    }).scan(artifactFromBytes(bomb, { filename: "42.zip" }));
    expect(capped.verdict).toBe("unknown");
    expect(capped.metadata.comments?.[0]).toBe("SKIPPED:LIMITS");
    console.log(`42.zip-style, 4 layers of 16 (64 GiB unpacked): ${elapsed} ms`);
  });

  it("scans a copy of a zip already walked once (what ends a quine: r.zip decodes to itself)", async () => {
    const inner = handZip([{ name: "readme.txt", content: "inside" }]);
    const outer = handZip([
      { name: "inner.zip", content: inner },
      { name: "again/inner.zip", content: inner, method: 0 },
    ]);
    const events = await walkEvents(outer, {}, "self.zip");
    expect(memberPaths(events)).toEqual(["self.zip!/inner.zip", "self.zip!/inner.zip!/readme.txt"]);
    // A stored copy's bytes hold the inner zip's local header: never taken for an entry of its own.
    const holder = handZip([{ name: "self.zip", content: outer, method: 0 }]);
    expect(memberPaths(await walkEvents(holder, {}, "holder.zip"))).toEqual([
      "holder.zip!/self.zip",
      "holder.zip!/self.zip!/inner.zip",
      "holder.zip!/self.zip!/inner.zip!/readme.txt",
    ]);
    // Without duplicate skipping, copies are walked again, still bounded.
    const again = await walkEvents(holder, { skipDuplicates: false }, "holder.zip");
    expect(memberPaths(again)).toHaveLength(5);
  });
});

describe("zip: bombs of overlapping entries (Fifield) and lying sizes", () => {
  it("answers an overlapping-entry bomb LIMITS (overlappingEntries) before extracting anything", async () => {
    const quoted = overlapBomb(64, 1024 * 1024); // 64 entries sharing one 1 MiB kernel
    const shared = sharedHeaderBomb(64, 1024 * 1024);
    for (const bomb of [quoted, shared]) {
      const started = Date.now();
      const events = await walkEvents(bomb, {}, "bomb.zip");
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(memberPaths(events)).toEqual([]);
      expect(skipLines(events)).toEqual(["bomb.zip LIMITS overlappingEntries"]);
    }
    const result = await createUnpackingScanner(createEicarScanner()).scan(
      artifactFromBytes(quoted, { filename: "bomb.zip" }),
    );
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:LIMITS");
    expect(report(result).skipped[0]?.reason).toContain("overlap");
    // Appended to other bytes (found by its end record only), it is still reported.
    const appended = Buffer.concat([Buffer.from("GIF89a not a zip at all"), quoted]);
    expect(skipLines(await walkEvents(appended, {}, "image.gif"))).toEqual([
      "image.gif!/(overlapping entries) LIMITS overlappingEntries",
    ]);
  });

  it("keeps the event loop turning while it reads a directory of 65,534 records", async () => {
    const bomb = sharedHeaderBomb(65_534, 1024 * 1024);
    const longest = await leastStall(
      async () => {
        const events = await walkEvents(bomb, {}, "bomb.zip");
        expect(skipLines(events)).toEqual(["bomb.zip LIMITS overlappingEntries"]);
      },
      { boundMs: 150, tickMs: 5 },
    );
    // Before: one stretch of ~0.7 s (zip.js parses in microtasks only).
    expect(longest).toBeLessThan(150);
  }, 30_000);

  it("catches overlaps the directory hides (local headers quoted in extra fields, sizes declared tiny) as entries decode", async () => {
    const bomb = extraFieldBomb(64, 1024 * 1024);
    const events = await walkEvents(bomb, {}, "bomb.zip");
    expect(skipLines(events)).toEqual(["bomb.zip LIMITS overlappingEntries"]);
    // The first entry came out before the overlaps were seen; its 5 copies are duplicates.
    expect(memberPaths(events)).toEqual(["bomb.zip!/0000"]);
  });

  it("reads a zip stuffed with signatures (local headers, descriptors) in bounded time: LIMITS", async () => {
    const noise = Buffer.alloc(8 * 1024 * 1024);
    for (let at = 0; at + 8 <= noise.length; at += 8)
      noise.write("PK\x03\x04PK\x07\x08", at, "latin1");
    const archive = handZip([{ name: "a.txt", content: "hello" }], { between: noise });
    const started = Date.now();
    const events = await walkEvents(archive, { memoryLimitBytes: 0 }, "noise.zip");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(skipLines(events)).toContain("noise.zip!/(local headers) LIMITS maxMembers");
  });

  it("keeps the event loop turning and meets the deadline in an in-memory zip stuffed with data-descriptor signatures", async () => {
    const noise = Buffer.alloc(8 * 1024 * 1024);
    for (let at = 0; at + 4 <= noise.length; at += 4) noise.write("PK\x07\x08", at, "latin1");
    const archive = handZip([{ name: "a.txt", content: "hello" }], { between: noise });
    let started = 0;
    let took = 0;
    const longest = await leastStall(
      async () => {
        started = performance.now();
        await expect(
          walkEvents(archive, { deadline: Date.now() + 300 }, "noise.zip"),
        ).rejects.toBeInstanceOf(ScanTimeoutError);
        took = performance.now() - started;
        // Without a deadline: bounded too (the descriptors read are capped).
        const events = await walkEvents(archive, {}, "noise.zip");
        expect(memberPaths(events)[0]).toBe("noise.zip!/a.txt");
      },
      { boundMs: 150, tickMs: 5 },
    );
    // Before: one stretch of ~5 s (every signature awaited in microtasks), the deadline missed.
    console.log(
      `descriptor noise: deadline met after ${Math.round(took)} ms, longest stretch ${Math.round(longest)} ms, ${Math.round(performance.now() - started)} ms in all`,
    );
    expect(took).toBeLessThan(1_000);
    expect(longest).toBeLessThan(150);
  }, 30_000);

  it("reads at most 4 data descriptor signatures per member: an entry whose end only a later one gives is LIMITS", async () => {
    const noiseOf = (signatures: number) => {
      const noise = Buffer.alloc(signatures * 4);
      for (let at = 0; at < noise.length; at += 4) noise.write("PK\x07\x08", at, "latin1");
      return handZip([
        { name: "noise.bin", content: noise, method: 0 },
        // Stored, its sizes in a data descriptor only, missing from the directory.
        { name: "late.com", content: eicarPadded(), method: 0, descriptor: true, listed: false },
      ]);
    };
    const limits = { maxMembers: 100 }; // 10,000 signatures (the least)
    const few = await walkEvents(noiseOf(9_000), { limits }, "few.zip");
    expect(eicarPath(few)).toBe("few.zip!/late.com (not in the central directory)");
    const many = await walkEvents(noiseOf(10_001), { limits }, "many.zip");
    // Its data is still looked at, as bytes nothing accounts for.
    expect(eicarPath(many)).toMatch(/^many\.zip!\/\(unlisted bytes \d+-\d+\)$/);
    expect(skipLines(many)).toContain(
      "many.zip!/late.com (not in the central directory) LIMITS maxMembers",
    );
  });

  it("tolerates up to 5 overlapping entries (ClamAV's threshold): each decoded and counted", async () => {
    const few = overlapBomb(6, 4096); // 5 overlaps
    const events = await walkEvents(few, {}, "few.zip");
    const depthOne = events.filter((event) => event.kind === "member" && event.member.depth === 1);
    expect(depthOne).toHaveLength(6);
    expect(skipLines(events).filter((line) => line.includes("overlappingEntries"))).toEqual([]);
  });

  it("counts bytes as they come out, whatever sizes an entry declares", async () => {
    const large = Buffer.alloc(8 * 1024 * 1024, 0x41);
    const archive = handZip([
      // Declares 100 bytes, inflates to 8 MiB: stopped at maxMemberBytes by what came out.
      { name: "small-liar.bin", content: large, declaredSize: 100 },
      // Declares 4 GiB - 1 (nothing is allocated from it), holds EICAR.
      { name: "huge-liar.com", content: eicarPadded(), declaredSize: 0xffff_fffe },
      // Declares 10 bytes, holds EICAR after them: found whole.
      {
        name: "short-liar.com",
        content: Buffer.concat([Buffer.from("0123456789"), eicarPadded()]),
        declaredSize: 10,
      },
    ]);
    const events = await walkEvents(
      archive,
      { limits: { maxMemberBytes: 1024 * 1024 } },
      "liar.zip",
    );
    expect(skipLines(events)).toEqual(["liar.zip!/small-liar.bin LIMITS maxMemberBytes"]);
    expect(eicarPath(events)).toBe("liar.zip!/huge-liar.com");
    const shortLiar = events.find(
      (event) => event.kind === "member" && event.member.path.endsWith("short-liar.com"),
    );
    expect(shortLiar).toMatchObject({ member: { size: 10 + eicarPadded().length } });
    // A stored entry whose declared compressed size runs past the end: what is there, then CORRUPT.
    const stored = handZip([{ name: "cut.com", content: eicarPadded(), method: 0 }]);
    const cut = Buffer.concat([stored.subarray(0, 30 + 7 + 100)]);
    const cutEvents = await walkEvents(cut, {}, "cut.zip");
    expect(eicarPath(cutEvents)).toBe("cut.zip!/cut.com (not in the central directory)");
    expect(skipLines(cutEvents)).toEqual([
      "cut.zip!/cut.com (not in the central directory) CORRUPT",
      "cut.zip CORRUPT",
    ]);
  });

  it("stops a deflate bomb at the ratio (inflated with back-pressure, never whole)", async () => {
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    const archive = toolZip("zip", { "zeros.bin": zeros }, ["-9"]);
    const started = Date.now();
    const events = await walkEvents(
      archive,
      { limits: { ratioFloorBytes: 1024 * 1024, maxRatio: 100 } },
      "bomb.zip",
    );
    expect(skipLines(events)).toEqual(["bomb.zip!/zeros.bin LIMITS maxRatio"]);
    expect(Date.now() - started).toBeLessThan(5_000);
    // With the byte limits lifted, the scan's deadline ends it.
    const unbounded = { maxRatio: 1e9, maxMemberBytes: 2 ** 40, maxTotalBytes: 2 ** 40 };
    await expect(
      walkEvents(archive, { deadline: Date.now() + 100, limits: unbounded }, "bomb.zip"),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
  });
});
