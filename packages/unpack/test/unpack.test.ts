import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { artifactFromBytes, artifactFromFile, ScanTimeoutError } from "@engine/core";
import { describe, expect, it } from "vitest";
import { type UnpackEvent, unpack } from "../src/index.js";
import { mayHoldContainers } from "../src/unpack.js";
import { eicarBytes, gzipLayers, leastStall, tarOf } from "./fixtures.js";
import { compressed } from "./seven-zip-fixtures.js";

/** Every event of an unpack, members with their content as text (short) and size. */
async function walk(
  bytes: Uint8Array,
  options: Parameters<typeof unpack>[1] = {},
  filename = "root.bin",
) {
  const events: Array<UnpackEvent & { text?: string }> = [];
  for await (const event of unpack(artifactFromBytes(bytes, { filename }), options)) {
    if (event.kind === "member") {
      const content = Buffer.from(await event.member.artifact.bytes());
      events.push({ ...event, text: content.subarray(0, 80).toString("latin1") });
    } else events.push(event);
  }
  return events;
}
const members = (events: Awaited<ReturnType<typeof walk>>) =>
  events
    .filter((event) => event.kind === "member")
    .map((event) => (event.kind === "member" ? event.member.path : ""));
const skips = (events: Awaited<ReturnType<typeof walk>>) =>
  events.flatMap((event) =>
    event.kind === "skipped"
      ? [`${event.path} ${event.code}${event.limit ? ` ${event.limit}` : ""}`]
      : [],
  );

describe("unpack: members, recursively, with their paths", () => {
  it("walks a tar.gz into its files and a nested gzip, depth first", async () => {
    const inner = await tarOf({ "docs/readme.txt": "hello", "payload.gz": gzipSync(eicarBytes()) });
    const events = await walk(gzipSync(inner), {}, "bundle.tar.gz");
    expect(members(events)).toEqual([
      "bundle.tar.gz!/bundle.tar",
      "bundle.tar.gz!/bundle.tar!/docs/readme.txt",
      "bundle.tar.gz!/bundle.tar!/payload.gz",
      "bundle.tar.gz!/bundle.tar!/payload.gz!/payload",
    ]);
    const eicar = events.find(
      (event) => event.kind === "member" && event.member.path.endsWith("!/payload"),
    );
    expect(eicar?.text).toBe(eicarBytes().toString("latin1"));
    expect(
      events
        .filter((event) => event.kind === "container")
        .map((event) => (event.kind === "container" ? event.format : "")),
    ).toEqual(["gzip", "tar", "gzip"]);
  });

  it("reads plain bytes as plain: no event at all", async () => {
    expect(await walk(Buffer.from("nothing inside"))).toEqual([]);
  });

  it("stops at maxDepth with a LIMITS skip naming it (17 layers pass, 18 do not)", async () => {
    const deep = await walk(gzipLayers(eicarBytes(), 17));
    expect(skips(deep)).toEqual([]);
    expect(deep.filter((event) => event.kind === "member").at(-1)?.text).toBe(
      eicarBytes().toString("latin1"),
    );
    const deeper = await walk(gzipLayers(eicarBytes(), 18));
    expect(skips(deeper)).toHaveLength(1);
    expect(skips(deeper)[0]).toMatch(/ LIMITS maxDepth$/);
    const shallow = await walk(gzipLayers(eicarBytes(), 3), { limits: { maxDepth: 2 } });
    expect(skips(shallow)[0]).toMatch(/ LIMITS maxDepth$/);
  });

  it("bounds members, bytes per member and in all, and the ratio, counting bytes as they come out", async () => {
    const many = await tarOf(
      Object.fromEntries(
        Array.from({ length: 30 }, (_, index) => [`f${index}.txt`, `file ${index}`]),
      ),
    );
    const capped = await walk(many, { limits: { maxMembers: 10 } });
    expect(members(capped)).toHaveLength(10);
    expect(skips(capped)).toEqual(["root.bin!/f10.txt LIMITS maxMembers"]);
    const big = await tarOf({ "big.bin": Buffer.alloc(5000, 1), "small.txt": "ok" });
    const perMember = await walk(big, { limits: { maxMemberBytes: 4096 } });
    expect(skips(perMember)).toEqual(["root.bin!/big.bin LIMITS maxMemberBytes"]);
    expect(members(perMember)).toEqual(["root.bin!/small.txt"]);
    const total = await walk(big, { limits: { maxTotalBytes: 3000 } });
    expect(skips(total)).toEqual(["root.bin!/big.bin LIMITS maxTotalBytes"]);
    // A gzip bomb: 64 MiB of zeros in 64 KB stops at the ratio once past the floor, not at the end.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const started = Date.now();
    const ratio = await walk(bomb, { limits: { ratioFloorBytes: 1024 * 1024, maxRatio: 100 } });
    expect(skips(ratio)[0]).toMatch(/ LIMITS maxRatio$/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("scans identical content once (skipDuplicates), and the root counts as seen", async () => {
    const twice = await tarOf({ "a.txt": "same", "b.txt": "same", "c.txt": "other" });
    expect(members(await walk(twice))).toEqual(["root.bin!/a.txt", "root.bin!/c.txt"]);
    expect(members(await walk(twice, { skipDuplicates: false }))).toHaveLength(3);
  });

  it("tells a tar member shaped by extended headers (pax, long names) from a plain one", async () => {
    const long = `${"d/".repeat(60)}deep.txt`;
    const events = await walk(await tarOf({ "plain.txt": "a", [long]: "b" }));
    const methods = events.flatMap((event) =>
      event.kind === "member" ? [[event.member.path.length > 100, event.member.method]] : [],
    );
    expect(methods).toEqual([
      [false, "ustar"],
      [true, "pax"],
    ]);
  });

  it("counts duplicates and skips against maxMembers: a list of copies ends LIMITS", async () => {
    const copies = Object.fromEntries(
      Array.from({ length: 30 }, (_, index) => [`copy-${index}.txt`, "same"]),
    );
    const events = await walk(await tarOf(copies), { limits: { maxMembers: 10 } });
    expect(members(events)).toEqual(["root.bin!/copy-0.txt"]);
    expect(skips(events)).toEqual(["root.bin!/copy-10.txt LIMITS maxMembers"]);
  });

  it("lets timers fire while it walks thousands of entries held in memory", async () => {
    const many = Object.fromEntries(
      Array.from({ length: 5_000 }, (_, index) => [`f-${index}.txt`, `${index}`]),
    );
    const tar = await tarOf(many);
    const longest = await leastStall(
      async () => {
        expect(members(await walk(tar))).toHaveLength(5_000);
      },
      { boundMs: 100, tickMs: 2 },
    );
    expect(longest).toBeLessThan(100);
  }, 30_000);

  it("names members as data: control characters escaped, no path taken from them", async () => {
    const odd = await tarOf({ "../../etc/evil\nname.txt": "x" });
    expect(members(await walk(odd))).toEqual(["root.bin!/../../etc/evil\\x0aname.txt"]);
    // C1 controls and direction overrides too: "invoice\u202Etxt.exe" shows as "invoiceexe.txt".
    const spoofed = await tarOf({ "invoice\u202etxt.exe": "x", "a\u0085b": "y" });
    expect(members(await walk(spoofed))).toEqual([
      "root.bin!/invoice\\u202etxt.exe",
      "root.bin!/a\\x85b",
    ]);
  });

  it("answers a corrupt container CORRUPT, and one recognised but not decoded UNSUPPORTED", async () => {
    const truncated = gzipSync(randomBytes(100_000)).subarray(0, 2_000);
    expect(skips(await walk(truncated))).toEqual(["root.bin!/content CORRUPT"]);
    const notRar = Buffer.from("Rar!\x1a\x07\x01\x00 not really");
    expect(skips(await walk(notRar))).toEqual(["root.bin CORRUPT"]);
    const lzipVersion2 = compressed("lzip", Buffer.from("a later lzip version"));
    lzipVersion2[4] = 2;
    expect(skips(await walk(lzipVersion2))).toEqual(["root.bin UNSUPPORTED"]);
  });

  it("identifies a file by what it holds now, whatever size it was given: smaller (it grew, or procfs says 0) or exact", async () => {
    const directory = await mkdtemp(join(tmpdir(), "engine-unpack-sizes-"));
    try {
      const path = join(directory, "bundle.tar.gz");
      const bytes = gzipSync(await tarOf({ "inner.txt": "hello" }));
      await writeFile(path, bytes);
      const plain = join(directory, "plain.txt");
      await writeFile(plain, "just text");
      for (const size of [undefined, 0, 10, bytes.byteLength]) {
        const artifact = artifactFromFile(path, size === undefined ? {} : { size });
        expect(await mayHoldContainers(artifact, undefined)).toBe(true);
        const found: string[] = [];
        for await (const event of unpack(artifact))
          if (event.kind === "member") found.push(event.member.path);
        expect(found).toContain("bundle.tar.gz!/bundle.tar!/inner.txt");
      }
      expect(await mayHoldContainers(artifactFromFile(plain, { size: 9 }), undefined)).toBe(false);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it("finds a zip appended to a gzip as trailing data (unzip reads it)", async () => {
    const zipMagic = Buffer.from([0x50, 0x4b, 3, 4, 20, 0, 0, 0, 0, 0]);
    const appended = Buffer.concat([gzipSync(Buffer.from("decoy")), zipMagic]);
    const events = await walk(appended);
    expect(members(events)).toEqual(["root.bin!/content", "root.bin!/(trailing data)"]);
  });

  it("ends at the deadline with ScanTimeoutError", async () => {
    const bomb = gzipSync(Buffer.alloc(256 * 1024 * 1024));
    await expect(
      walk(bomb, {
        deadline: Date.now() + 150,
        limits: { maxRatio: 1e9, maxMemberBytes: 2 ** 40, maxTotalBytes: 2 ** 40 },
      }),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
  });
});
