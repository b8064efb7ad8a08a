import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  artifactFromBytes,
  BackendUnavailableError,
  createEicarScanner,
  eicarBytes,
} from "@engine/core";
import { describe, expect, it, vi } from "vitest";
import { lazyLibrary } from "../src/extractors/library-loading.js";
import { createUnpackingScanner } from "../src/index.js";

// tar-stream cannot be loaded in this file (a broken install): every import of it fails.
vi.mock("tar-stream", () => {
  throw new Error("simulated: the module cannot be loaded");
});

/** A tar made by the tar tool, holding `name` with `content`. */
function tarOf(name: string, content: Uint8Array): Buffer {
  const directory = mkdtempSync(join(tmpdir(), "engine-tar-"));
  try {
    mkdirSync(join(directory, "in"));
    writeFileSync(join(directory, "in", name), content);
    execFileSync("tar", ["-cf", join(directory, "out.tar"), "-C", join(directory, "in"), name]);
    return readFileSync(join(directory, "out.tar"));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

describe("lazyLibrary", () => {
  it("fails with BackendUnavailableError, keeps no failed load, and shares one load", async () => {
    let attempts = 0;
    const library = lazyLibrary("demo", async () => {
      attempts += 1;
      if (attempts === 1) throw new Error("EMFILE: too many open files");
      return { loaded: attempts };
    });
    const failed = library();
    await expect(failed).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(failed).rejects.toThrow(/cannot load demo: EMFILE/);
    // Tried again, and loaded once for callers at the same time.
    const [one, two] = await Promise.all([library(), library()]);
    expect(one).toBe(two);
    expect(attempts).toBe(2);
  });
});

describe("a format library that cannot load", () => {
  it("fails the scan of a tar (never benign: its members were not seen), and leaves other formats alone", async () => {
    const scanner = createUnpackingScanner(createEicarScanner());
    const tar = tarOf("eicar.com.gz", gzipSync(eicarBytes()));
    // By its name and by its bytes alike (a format only guessed must not become "not there").
    for (const filename of ["bundle.tar", "bundle.bin"])
      await expect(scanner.scan(artifactFromBytes(tar, { filename }))).rejects.toThrow(
        /cannot load tar-stream/,
      );
    // A gzip needs no tar-stream: found as before.
    const gz = await scanner.scan(artifactFromBytes(gzipSync(eicarBytes()), { filename: "e.gz" }));
    expect(gz.verdict).toBe("malicious");
  });
});
