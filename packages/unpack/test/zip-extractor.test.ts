import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { artifactFromBytes, createEicarScanner } from "@engine/core";
import { describe, expect, it } from "vitest";
import { createUnpackingScanner, type UnpackReport, unpack } from "../src/index.js";
import {
  createStrictEicarScanner,
  eicarBytes,
  eicarPadded,
  eicarPath,
  handZip,
  inTemporaryDirectory,
  memberPaths,
  skipLines,
  toolZip,
  walkEvents,
} from "./zip-fixtures.js";

const report = (result: { metadata: Record<string, unknown> }) =>
  result.metadata.unpack as UnpackReport;

describe("zip: members found with their paths", () => {
  it("finds EICAR deflated in a zip, with the member's path", async () => {
    const archive = toolZip("zip", {
      "docs/readme.txt": "hello",
      "tools/eicar.com": eicarPadded(),
    });
    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(archive, { filename: "bundle.zip" }));
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe("bundle.zip!/tools/eicar.com");
    const events = await walkEvents(archive, {}, "bundle.zip");
    expect(memberPaths(events)).toEqual([
      "bundle.zip!/docs/readme.txt",
      "bundle.zip!/tools/eicar.com",
    ]);
    expect(
      events.find((event) => event.kind === "member" && event.text?.startsWith("X5O")),
    ).toMatchObject({
      member: { container: "zip", method: "deflate" },
    });
  });

  it("finds EICAR stored in a zip as its member (the strict scanner only matches a file starting with it)", async () => {
    const archive = toolZip("zip", { "eicar.com": eicarBytes() }, ["-0"]);
    const events = await walkEvents(archive, {}, "stored.zip");
    expect(eicarPath(events)).toBe("stored.zip!/eicar.com");
    expect(events.find((event) => event.kind === "member")).toMatchObject({
      member: { method: "stored" },
    });
    const strict = createUnpackingScanner(createStrictEicarScanner());
    const result = await strict.scan(artifactFromBytes(archive, { filename: "stored.zip" }));
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe("stored.zip!/eicar.com");
    // The plain EICAR scanner sees the string in the zip's own bytes already.
    const plain = await createUnpackingScanner(createEicarScanner()).scan(
      artifactFromBytes(archive),
    );
    expect(plain.verdict).toBe("malicious");
  });

  it("reads JAR, APK and OOXML (.docx) as the zips they are", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    const jar = toolZip("zip", {
      "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\n",
      "com/example/Main.class": Buffer.from([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52]),
      "com/example/payload.bin": eicarPadded(),
    });
    const docx = toolZip("zip", {
      "[Content_Types].xml": '<?xml version="1.0"?><Types/>',
      "word/document.xml": "<w:document/>",
      "word/embeddings/oleObject1.bin": eicarPadded(),
    });
    const apk = toolZip("7zz", {
      "AndroidManifest.xml": "manifest",
      "classes.dex": "dex\n035\0",
      "assets/eicar.txt": eicarPadded(),
    });
    for (const [name, bytes, mimetype, path] of [
      ["app.jar", jar, "application/java-archive", "app.jar!/com/example/payload.bin"],
      [
        "report.docx",
        docx,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "report.docx!/word/embeddings/oleObject1.bin",
      ],
      ["app.apk", apk, "application/vnd.android.package-archive", "app.apk!/assets/eicar.txt"],
    ] as const) {
      const result = await scanner.scan(artifactFromBytes(bytes, { filename: name, mimetype }));
      expect(result.verdict).toBe("malicious");
      expect(report(result).detected_in).toBe(path);
    }
  });

  it("answers benign for an honest zip of benign files (directories, empty files, nested zip)", async () => {
    const inner = toolZip("zip", { "notes.txt": "inner notes" });
    const archive = toolZip(
      "zip",
      {
        "a.txt": "alpha",
        "empty.txt": "",
        "dir/b.txt": "beta".repeat(1000),
        "inner.zip": inner,
      },
      ["-r"],
    );
    const scanner = createUnpackingScanner(createEicarScanner());
    const result = await scanner.scan(artifactFromBytes(archive, { filename: "clean.zip" }));
    expect(result.verdict).toBe("benign");
    expect(report(result)).toMatchObject({ skipped_count: 0, members: 5 });
    const empty = await scanner.scan(artifactFromBytes(handZip([])));
    expect(empty.verdict).toBe("benign");
  });
});

describe("zip: what is not looked into is unknown with its code", () => {
  it("answers ZipCrypto and AES entries ENCRYPTED (no password tried), never benign", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    const zipCrypto = toolZip("zip", { "eicar.com": eicarPadded() }, ["-P", "infected"]);
    const aes = toolZip("7zz", { "eicar.com": eicarPadded() }, ["-mem=AES256", "-pinfected"]);
    for (const [label, archive] of [
      ["ZipCrypto", zipCrypto],
      ["AES", aes],
    ] as const) {
      const result = await scanner.scan(artifactFromBytes(archive, { filename: "secret.zip" }));
      expect(result.verdict).toBe("unknown");
      expect(result.metadata.comments?.[0]).toBe("SKIPPED:ENCRYPTED");
      expect(report(result).skipped[0]).toMatchObject({ path: "secret.zip!/eicar.com" });
      expect(report(result).skipped[0]?.reason).toContain(label);
    }
  });

  it("still finds EICAR next to an encrypted entry", async () => {
    const archive = handZip([
      { name: "locked.bin", content: "not really encrypted", flags: 1, method: 0 },
      { name: "eicar.com", content: eicarPadded() },
    ]);
    const result = await createUnpackingScanner(createEicarScanner()).scan(
      artifactFromBytes(archive, { filename: "mixed.zip" }),
    );
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe("mixed.zip!/eicar.com");
  });

  it("decodes deflate64 (zip.js) and LZMA, PPMd and bzip2 (7-Zip, for those entries only)", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    for (const [method, name] of [
      ["Deflate64", "deflate64"],
      ["LZMA", "lzma"],
      ["PPMd", "ppmd"],
      ["BZip2", "bzip2"],
    ] as const) {
      const archive = toolZip(
        "7zz",
        { "eicar.com": eicarPadded(), "notes.txt": "notes ".repeat(99) },
        [`-mm=${method}`],
      );
      const events = await walkEvents(archive, {}, "method.zip");
      expect(skipLines(events)).toEqual([]);
      expect(events.filter((event) => event.kind === "member")).toMatchObject([
        { member: { path: "method.zip!/eicar.com", method: name } },
        { member: { path: "method.zip!/notes.txt", method: name } },
      ]);
      const result = await scanner.scan(artifactFromBytes(archive, { filename: "method.zip" }));
      expect(result.verdict).toBe("malicious");
      expect(report(result).detected_in).toBe("method.zip!/eicar.com");
    }
  }, 30_000);

  it("answers a method no decoder has UNSUPPORTED, the other entries decoded", async () => {
    // Method 97 (WavPack): neither zip.js nor 7-Zip decodes it.
    const archive = handZip([
      { name: "readme.txt", content: "hello" },
      { name: "sound.wv", content: "wvpk sound samples", method: 97 },
    ]);
    const events = await walkEvents(archive, {}, "odd.zip");
    expect(memberPaths(events)).toEqual(["odd.zip!/readme.txt"]);
    expect(skipLines(events)).toEqual(["odd.zip!/sound.wv UNSUPPORTED"]);
    const result = await createUnpackingScanner(createEicarScanner()).scan(
      artifactFromBytes(archive),
    );
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:UNSUPPORTED");
  });

  it("reads a program that holds zip signatures among its constants as plain bytes (/usr/bin/osslsigncode)", async () => {
    // An ELF whose data holds a local header declaring 2 GB, and an end record near its end:
    // no zip reader extracts anything from it (unzip: "seek before beginning"; 7-Zip: ELF).
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(8, 8); // deflate
    header.writeUInt32LE(0x89480000, 18); // compressed size: 2.3 GB
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt32LE(0x7fff0000, 16); // a directory offset past the end
    const program = Buffer.concat([
      Buffer.from("\x7fELF\x02\x01\x01", "latin1"),
      randomBytes(4_000),
      header,
      randomBytes(4_000),
      end,
      randomBytes(20_000),
    ]);
    expect(await walkEvents(program, {}, "osslsigncode")).toEqual([]);
    const result = await createUnpackingScanner(createEicarScanner()).scan(
      artifactFromBytes(program),
    );
    expect(result.verdict).toBe("benign");
    // The same end record after a zip whose headers' data is there, its directory unreadable:
    // a zip appended to a program (a self-extractor), looked into from its local headers.
    const appended = handZip([{ name: "a.txt", content: "appended entry" }], {
      prefix: Buffer.from("\x7fELF\x02\x01\x01 a program, then a zip", "latin1"),
    });
    appended.fill(0, appended.indexOf("PK\x01\x02", 0, "latin1"), appended.length - 22);
    const events = await walkEvents(appended, {}, "sfx");
    expect(memberPaths(events)).toEqual(["sfx!/a.txt (not in the central directory)"]);
    expect(skipLines(events)).toEqual(["sfx CORRUPT"]);
  });

  it("answers a truncated zip CORRUPT (what its local headers still give is scanned)", async () => {
    const archive = toolZip("zip", {
      "first.txt": "first file, complete",
      "second.bin": randomBytes(20_000),
    });
    const truncated = archive.subarray(0, Math.floor(archive.length * 0.6));
    const events = await walkEvents(truncated, {}, "cut.zip");
    expect(memberPaths(events)[0]).toBe("cut.zip!/first.txt (not in the central directory)");
    expect(skipLines(events)).toContain("cut.zip CORRUPT");
    const result = await createUnpackingScanner(createEicarScanner()).scan(
      artifactFromBytes(truncated),
    );
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:CORRUPT");
    // Announced by its first bytes, and nothing readable: CORRUPT, not plain bytes.
    const garbage = Buffer.concat([Buffer.from("PK\x03\x04"), Buffer.alloc(40, 0xff)]);
    const unreadable = await walkEvents(garbage, {}, "garbage.zip");
    expect(skipLines(unreadable)).toEqual(["garbage.zip CORRUPT"]);
  });

  it("stops a zip of 20,000 members at maxMembers (10,000): LIMITS", async () => {
    const files = Object.fromEntries(
      Array.from({ length: 20_000 }, (_, index) => [`f/${index}.txt`, `file ${index}`]),
    );
    const archive = toolZip("zip", files);
    const started = Date.now();
    const events = await walkEvents(archive, { limits: { maxMembers: 10_000 } }, "many.zip");
    const elapsed = Date.now() - started;
    expect(memberPaths(events)).toHaveLength(10_000);
    expect(skipLines(events)).toHaveLength(1);
    expect(skipLines(events)[0]).toMatch(/^many\.zip!\/f\/\d+\.txt LIMITS maxMembers$/);
    console.log(`20,000 members, maxMembers 10,000: ${elapsed} ms`);
  }, 60_000);
});

describe("zip: names are data", () => {
  it("escapes traversal and control-character names in paths, and writes nothing under them", async () => {
    const archive = handZip([
      { name: "../../etc/cron.d/evil", content: "traversal" },
      { name: "/abs/path\r\nx.txt", content: "absolute with CR LF" },
      { name: "C:\\Windows\\evil.exe", content: "drive letter" },
      { name: "nul\u0000byte\u001b[31m.txt", content: "nul and escape" },
    ]);
    await inTemporaryDirectory(async (directory) => {
      const paths: string[] = [];
      const onDisk: string[] = [];
      const options = { memoryLimitBytes: 0, temporaryDirectory: directory };
      for await (const event of unpack(
        artifactFromBytes(archive, { filename: "names.zip" }),
        options,
      )) {
        if (event.kind !== "member") continue;
        paths.push(event.member.path);
        onDisk.push(...filesUnder(directory).map((file) => relative(directory, file)));
      }
      expect(paths).toEqual([
        "names.zip!/../../etc/cron.d/evil",
        "names.zip!/abs/path\\x0d\\x0ax.txt",
        "names.zip!/C:/Windows/evil.exe",
        "names.zip!/nul\\x00byte\\x1b[31m.txt",
      ]);
      // Each member was spooled to disk (memoryLimitBytes 0), under a random name only.
      expect(onDisk).toHaveLength(4);
      for (const file of onDisk) expect(file).toMatch(/^engine-unpack-[^/]+\/[0-9a-f]{24}$/);
      expect(filesUnder(directory)).toEqual([]);
    });
  });
});

/** Every file under `directory`, recursively. */
function filesUnder(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(directory, entry.name)) : [join(directory, entry.name)],
  );
}
