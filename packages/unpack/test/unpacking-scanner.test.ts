import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  artifactFromBytes,
  artifactFromFile,
  artifactFromStream,
  BackendUnavailableError,
  createEicarScanner,
  defineScanner,
  type Scanner,
} from "@engine/core";
import { describeScanner } from "@engine/core/testing";
import { describe, expect, it } from "vitest";
import { createUnpackingScanner, type UnpackReport } from "../src/index.js";
import { eicarBytes, gzipLayers, tarOf } from "./fixtures.js";
import { compressed } from "./seven-zip-fixtures.js";
import { eicarPadded, inTemporaryDirectory, toolZip } from "./zip-fixtures.js";

describeScanner("createUnpackingScanner(EICAR scanner)", () =>
  createUnpackingScanner(createEicarScanner()),
);

const report = (result: { metadata: Record<string, unknown> }) =>
  result.metadata.unpack as UnpackReport;

/** Bytes in memory as an artifact (`notes.txt.gz`) that counts the calls of its bytes(). */
function counted(bytes: Uint8Array) {
  const inner = artifactFromBytes(bytes, { filename: "notes.txt.gz" });
  const calls = { bytes: 0 };
  const artifact = {
    ...inner,
    kind: inner.kind,
    byteLength: () => inner.byteLength(),
    bytes: (options?: Parameters<typeof inner.bytes>[0]) => {
      calls.bytes += 1;
      return inner.bytes(options);
    },
    stream: (options?: Parameters<typeof inner.stream>[0]) => inner.stream(options),
  };
  return { artifact, calls };
}

/** A scanner that finds everything benign. */
function quietScanner(name: string): Scanner {
  return defineScanner({
    name,
    scan: async () => ({ verdict: "benign", confidence: 1, metadata: { malware_family: "" } }),
  });
}

describe("createUnpackingScanner: the inner scanner sees every member", () => {
  it("keeps the inner scanner's name, and finds EICAR inside a tar.gz with the member's path", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    expect(scanner.name).toBe("eicar");
    // (compressed inside the tar too: the tar's own bytes would hold the EICAR string)
    const archive = gzipSync(
      await tarOf({ "readme.txt": "hi", "tools/eicar.com.gz": gzipSync(eicarBytes()) }),
    );
    const result = await scanner.scan(artifactFromBytes(archive, { filename: "bundle.tgz" }));
    expect(result.verdict).toBe("malicious");
    expect(report(result).detected_in).toBe("bundle.tgz!/bundle!/tools/eicar.com.gz!/eicar.com");
    expect(result.metadata.malware_family).toBe("EICAR-Test-File");
  });

  it("answers benign only when every member was looked into and is benign", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    const clean = gzipSync(await tarOf({ "a.txt": "a", "b.txt": "b" }));
    const result = await scanner.scan(artifactFromBytes(clean));
    expect(result.verdict).toBe("benign");
    expect(report(result)).toMatchObject({ members: 3, skipped_count: 0 });
  });

  it("answers unknown with the SKIPPED code first for what it could not look into, never benign", async () => {
    const scanner = createUnpackingScanner(createEicarScanner(), { limits: { maxDepth: 2 } });
    const deep = await scanner.scan(artifactFromBytes(gzipLayers(eicarBytes(), 3)));
    expect(deep.verdict).toBe("unknown");
    expect(deep.metadata.comments?.[0]).toBe("SKIPPED:LIMITS");
    const rar = await scanner.scan(
      artifactFromBytes(Buffer.from("Rar!\x1a\x07\x01\x00 not a rar at all")),
    );
    expect(rar).toMatchObject({
      verdict: "unknown",
      metadata: { comments: ["SKIPPED:CORRUPT", expect.stringContaining("rar archive")] },
    });
    const lzipVersion2 = compressed("lzip", eicarBytes());
    lzipVersion2[4] = 2;
    expect(await scanner.scan(artifactFromBytes(lzipVersion2))).toMatchObject({
      verdict: "unknown",
      metadata: { comments: ["SKIPPED:UNSUPPORTED", expect.stringContaining("lzip")] },
    });
  });

  it("answers malicious when a member is, even if another was skipped", async () => {
    const scanner = createUnpackingScanner(createEicarScanner(), {
      limits: { maxMemberBytes: 1024 },
    });
    const mixed = await tarOf({
      "big.bin": Buffer.alloc(4096),
      "eicar.gz": gzipSync(eicarBytes()),
    });
    const result = await scanner.scan(artifactFromBytes(mixed));
    expect(result.verdict).toBe("malicious");
    expect(report(result).skipped[0]).toMatchObject({
      code: "SKIPPED:LIMITS",
      limit: "maxMemberBytes",
    });
  });

  it("counts every skip by its code, past the first 20 it describes", async () => {
    const scanner = createUnpackingScanner(createEicarScanner(), {
      limits: { maxMemberBytes: 16 },
    });
    const files = Object.fromEntries(
      Array.from({ length: 25 }, (_, index) => [`big-${index}.bin`, `${index} `.repeat(20)]),
    );
    const result = await scanner.scan(artifactFromBytes(await tarOf(files)));
    expect(result.verdict).toBe("unknown");
    expect(report(result)).toMatchObject({
      skipped_count: 25,
      skipped_by_code: { "SKIPPED:LIMITS": 25 },
    });
    expect(report(result).skipped).toHaveLength(20);
  });

  it("closes the inner scanner on close, even one its caller set up", async () => {
    const calls: string[] = [];
    const inner = defineScanner({
      name: "tracked",
      setup: async () => void calls.push("setup"),
      close: async () => void calls.push("close"),
      scan: async () => ({ verdict: "benign", confidence: 1, metadata: { malware_family: "" } }),
    });
    await inner.setup?.();
    const scanner = createUnpackingScanner(inner);
    await scanner.close?.();
    expect(calls).toEqual(["setup", "close"]);
    // Set up and scanned through the wrapper: closed once, again.
    await scanner.scan(artifactFromBytes(Buffer.from("x")));
    await scanner.close?.();
    expect(calls).toEqual(["setup", "close", "setup", "close"]);
  });

  it("scans a stream artifact (read once) as well as bytes", async () => {
    const scanner = createUnpackingScanner(createEicarScanner(), { memoryLimitBytes: 16 });
    const archive = gzipSync(await tarOf({ "eicar.com": eicarBytes() }));
    const result = await scanner.scan(
      artifactFromStream(
        (async function* () {
          yield archive;
        })(),
      ),
    );
    expect(result.verdict).toBe("malicious");
  });

  it("reads a small root once: the look that decides to walk is what the walk unpacks", async () => {
    // Bytes in memory are read through bytes() for each look, and once more by the gzip reader.
    const scanner = createUnpackingScanner(quietScanner("quiet"));
    const gz = counted(gzipSync(Buffer.from("release notes\n")));
    const result = await scanner.scan(gz.artifact);
    expect(report(result).members).toBe(1);
    // One look, which read it whole: it is hashed, identified and unpacked from those bytes.
    // Before, the look was taken three times and the gzip reader read four more (7).
    expect(gz.calls.bytes).toBe(1);
    // Plain text: the one look, and no walk.
    const plain = counted(Buffer.from("just text"));
    expect((await scanner.scan(plain.artifact)).verdict).toBe("benign");
    expect(plain.calls.bytes).toBe(1);
  });

  it("shares one look between the wrappers scanning one artifact at once, and looks again at the next scan", async () => {
    const { artifact, calls } = counted(gzipSync(Buffer.from("release notes\n")));
    const [one, two] = [
      createUnpackingScanner(quietScanner("one")),
      createUnpackingScanner(quietScanner("two")),
    ];
    const results = await Promise.all([one.scan(artifact), two.scan(artifact)]);
    expect(results.map((result) => report(result).members)).toEqual([1, 1]);
    expect(calls.bytes).toBe(1); // one look for both (each took its own before: 2)
    await one.scan(artifact);
    expect(calls.bytes).toBe(2); // released by both: the next scan looks again
  });

  it("looks again at a file rewritten between two scans of the same artifact", async () => {
    await inTemporaryDirectory(async (directory) => {
      const path = join(directory, "payload");
      writeFileSync(path, "plain text, no container\n");
      const artifact = artifactFromFile(path);
      const scanner = createUnpackingScanner(createEicarScanner());
      expect((await scanner.scan(artifact)).verdict).toBe("benign");
      writeFileSync(path, gzipSync(eicarBytes())); // now a gzip holding EICAR
      const result = await scanner.scan(artifact);
      expect(result.verdict).toBe("malicious");
      expect(report(result).detected_in).toBe("payload!/content");
    });
  });

  it("fails the scan when the backend fails, and skips a member the backend refuses alone", async () => {
    let calls = 0;
    const flaky: Scanner = defineScanner({
      name: "flaky",
      scan: async () => {
        calls += 1;
        if (calls > 1) throw new BackendUnavailableError({ message: "gone" });
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const scanner = createUnpackingScanner(flaky);
    await expect(
      scanner.scan(artifactFromBytes(gzipSync(Buffer.from("x")))),
    ).rejects.toBeInstanceOf(BackendUnavailableError);
  });

  it("lets a backend that unpacks some formats itself scan only the members of the others, still walking through all", async () => {
    const seen: string[] = [];
    const recording = defineScanner({
      name: "recording",
      scan: async (artifact) => {
        seen.push(artifact.filename ?? "(root)");
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    // Pretend the backend decodes tar itself but not gzip: it gets what came out of a gzip only.
    const scanner = createUnpackingScanner(recording, {
      scanMember: (member) => member.container === "gzip",
    });
    const archive = await tarOf({ "inner.gz": gzipSync(Buffer.from("hidden")), "plain.txt": "x" });
    const result = await scanner.scan(artifactFromBytes(archive, { filename: "outer.tar" }));
    expect(result.verdict).toBe("benign");
    expect(seen).toEqual(["outer.tar", "inner"]);
  });
});

describe("createUnpackingScanner: files on disk", () => {
  // A file is first looked at by its first and last bytes (while the inner scanner scans it):
  // read at once up to 104 KiB, head and tail apart past that. Either way a zip appended to
  // other bytes is seen, and a plain file is answered without a walk.
  const zipOfEicar = () => toolZip("zip", { "eicar.com": eicarPadded() });

  it.each([
    ["10 KiB", 10 * 1024],
    ["exactly a head and a tail", 40 * 1024 + 64 * 1024 + 22 - 300],
    ["1 MiB", 1024 * 1024],
  ])("finds EICAR in a zip appended to %s of other bytes", async (_, prefixBytes) => {
    const scanner = createUnpackingScanner(createEicarScanner());
    const zip = zipOfEicar();
    const bytes = Buffer.concat([randomBytes(prefixBytes), zip]);
    expect(bytes.includes(eicarBytes())).toBe(false);
    await inTemporaryDirectory(async (directory) => {
      const path = join(directory, "picture.jpg");
      writeFileSync(path, bytes);
      const result = await scanner.scan(artifactFromFile(path));
      expect(result.verdict).toBe("malicious");
      expect(report(result).detected_in).toMatch(/^picture\.jpg!\/.*eicar\.com/);
    });
  });

  it("unpacks a small file from the one read that identified it, even if it changes meanwhile", async () => {
    // Bytes after a gzip's end are read once its member was scanned; the scanner rewrites the
    // file then. The walk sees one state of the file: the one it looked at and hashed.
    await inTemporaryDirectory(async (directory) => {
      const path = join(directory, "notes.gz");
      const gz = gzipSync(Buffer.from("release notes\n"));
      const original = Buffer.concat([gz, Buffer.from("trailing-original")]);
      const changed = Buffer.concat([gz, Buffer.from("trailing-CHANGED!")]);
      writeFileSync(path, original);
      const seen: Record<string, string> = {};
      const recording = defineScanner({
        name: "recording",
        scan: async (artifact) => {
          const name = artifact.filename ?? "(root)";
          if (name !== "notes.gz") seen[name] = Buffer.from(await artifact.bytes()).toString();
          if (name === "notes") writeFileSync(path, changed);
          return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
        },
      });
      const result = await createUnpackingScanner(recording).scan(
        artifactFromFile(path, { size: original.byteLength }),
      );
      expect(seen).toEqual({ notes: "release notes\n", "(trailing data)": "trailing-original" });
      expect(result.verdict).toBe("benign");
    });
  });

  it("never blocks on a FIFO swapped in after the walk, nor makes a detection wait for it", async () => {
    // Opened for reading without a writer, a FIFO blocks a thread of the pool for good. The
    // look opens it without blocking; its read then fails (not a file: the scan fails, never
    // benign), and a malicious outer answer does not wait for the look at all.
    await inTemporaryDirectory(async (directory) => {
      const fifo = join(directory, "report.gz");
      execFileSync("mkfifo", [fifo]);
      const answering = (verdict: "benign" | "malicious") =>
        createUnpackingScanner(
          defineScanner({
            name: "answering",
            scan: async () => ({
              verdict,
              confidence: 1,
              metadata: { malware_family: verdict === "malicious" ? "Test.Family" : "" },
            }),
          }),
        );
      const options = { deadline: Date.now() + 10_000 };
      const fifoArtifact = () => artifactFromFile(fifo, { size: 100 });
      const malicious = await answering("malicious").scan(fifoArtifact(), options);
      expect(malicious.verdict).toBe("malicious");
      await expect(answering("benign").scan(fifoArtifact(), options)).rejects.toMatchObject({
        message: expect.stringMatching(/ESPIPE/),
      });
    });
  });

  it("answers a plain file as its inner scanner does, with nothing unpacked", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    await inTemporaryDirectory(async (directory) => {
      const path = join(directory, "notes.txt");
      writeFileSync(path, "plain text\n".repeat(20_000));
      const result = await scanner.scan(artifactFromFile(path));
      expect(result.verdict).toBe("benign");
      expect(report(result)).toMatchObject({ members: 0, skipped_count: 0 });
    });
  });
});
