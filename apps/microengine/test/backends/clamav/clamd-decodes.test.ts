import { brotliCompressSync, gzipSync } from "node:zlib";
import { type Artifact, artifactFromBytes, defineScanner } from "@engine/core";
import { describe, expect, it } from "vitest";
import {
  clamdDecodesItself,
  clamdScansMember,
  methodCoders,
} from "../../../src/backends/clamav/clamd-decodes.js";
import { withUnpacking } from "../../../src/backends/unpacking-backend.js";
import { tarArchive } from "../../../src/commands/check-archives.js";
import { loadConfig } from "../../../src/config/config.js";

describe("which members go to clamd", () => {
  it("reads methods as 7-Zip and the extractors write them", () => {
    expect(methodCoders("LZMA2:24")).toEqual(["lzma2"]);
    expect(methodCoders("PPMD:o6:mem24")).toEqual(["ppmd"]);
    expect(methodCoders("BCJ LZMA2:24")).toEqual(["bcj", "lzma2"]);
    expect(methodCoders("Store")).toEqual(["stored"]);
    expect(methodCoders("Copy")).toEqual(["stored"]);
    expect(methodCoders("deflate")).toEqual(["deflate"]);
  });

  it("sends a member only when clamd cannot decode its container (or its method) itself", () => {
    expect(clamdScansMember({ container: "gzip" })).toBe(false);
    expect(clamdScansMember({ container: "tar", method: "ustar" })).toBe(false);
    expect(clamdScansMember({ container: "bzip2", method: "bzip2" })).toBe(false);
    expect(clamdScansMember({ container: "zip", method: "deflate" })).toBe(false);
    expect(clamdScansMember({ container: "zip", method: "Store" })).toBe(false);
    expect(clamdScansMember({ container: "7z", method: "BCJ LZMA2:24" })).toBe(false);
    // clamd answers OK for these: the member goes to clamd.
    for (const member of [
      { container: "zip", method: "ppmd" },
      { container: "zip", method: "LZMA:eos" },
      { container: "7z", method: "BZip2" },
      { container: "7z", method: "Delta:1 LZMA:14" },
      { container: "lzip" },
      { container: "zstd" },
      { container: "brotli" },
      { container: "lzma" },
      { container: "tar", method: "pax" },
      { container: "bzip2", method: "bzip2 multi-stream" },
    ] as const)
      expect(clamdScansMember(member), JSON.stringify(member)).toBe(true);
    // A method the table does not know, or none where methods matter: sent (never a miss).
    expect(clamdScansMember({ container: "zip", method: "zstd" })).toBe(true);
    expect(clamdScansMember({ container: "zip" })).toBe(true);
    expect(clamdDecodesItself("rar", "anything")).toBe(false);
  });

  it("always sends what a standard reader hides (appended data, entries missing from the central directory)", () => {
    expect(clamdScansMember({ container: "gzip", hidden: true })).toBe(true);
    expect(clamdScansMember({ container: "zip", method: "deflate", hidden: true })).toBe(true);
  });
});

describe("ClamAV wrapped with the table", () => {
  /** A clamd stand-in that records what it is given (by its first bytes) and finds nothing. */
  function recordingClamd() {
    const given: string[] = [];
    const scanner = defineScanner({
      name: "clamav",
      scan: async (artifact: Artifact) => {
        given.push(
          Buffer.from(await artifact.bytes())
            .subarray(0, 12)
            .toString("latin1"),
        );
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const backend = withUnpacking(
      {
        name: "clamav",
        scanner,
        status: { name: "clamav", running: true, reason: "test" },
        health: async () => ({ ok: true }),
      },
      loadConfig({}),
      clamdScansMember,
    );
    return { backend, given };
  }

  it("scans the artifact as it is, then only the members clamd cannot see: not a gzip's, but what follows it and a brotli's", async () => {
    const { backend, given } = recordingClamd();
    const tar = tarArchive([{ name: "notes.txt", data: Buffer.from("plain notes\n") }]);
    const appended = Buffer.concat([gzipSync(tar), Buffer.from("APPENDED-DATA after the gzip")]);
    await backend.scanner.scan(artifactFromBytes(appended, { filename: "a.tar.gz" }));
    // The outer bytes; then the appended data (hidden); never the tar or its member.
    expect(given).toEqual([appended.subarray(0, 12).toString("latin1"), "APPENDED-DAT"]);
    given.splice(0);
    const brotli = brotliCompressSync(Buffer.from("BROTLI-MEMBER text"));
    await backend.scanner.scan(artifactFromBytes(brotli, { filename: "m.br" }));
    expect(given).toEqual([brotli.subarray(0, 12).toString("latin1"), "BROTLI-MEMBE"]);
  });
});
