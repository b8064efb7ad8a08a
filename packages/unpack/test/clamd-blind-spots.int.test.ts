// The containers a real clamd answers OK for although EICAR is inside (it cannot decode them,
// and no alert setting reports it), scanned by the same clamd wrapped in
// createUnpackingScanner: the members reach clamd one by one and EICAR is found, with the path
// of the member it was in. clamd's own answer is asserted too, so this file also says which
// blind spot each case is (a clamd that learns a format fails here, and the case can go).
// Fixtures are written by the real tools (7zz, brotli, lzip, lzma, zip); the hidden entry by
// hand. The 7-Zip worker runs from the build: run `pnpm build` in this package first.
import { type ClamavScanner, createClamavScanner } from "@engine/clamav";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import { artifactFromBytes, eicarTestString, type Scanner } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUnpackingScanner, type UnpackReport } from "../src/index.js";
import {
  compressed,
  requireBuiltWorker,
  scratchDirectory,
  sevenZipArchive,
  tool,
} from "./seven-zip-fixtures.js";
import { handZip, toolZip } from "./zip-fixtures.js";

/** EICAR, then compressible lines: every method compresses it, so its bytes are not in plain. */
const member = Buffer.from(
  `${eicarTestString}\n${Array.from({ length: 200 }, (_, line) => `filler line ${line} of a compressible member\n`).join("")}`,
);

let scratch: ReturnType<typeof scratchDirectory>;
let clamd: ManagedClamd;
let clamav: ClamavScanner;
let unpacking: Scanner;
beforeAll(async () => {
  requireBuiltWorker();
  scratch = scratchDirectory();
  clamd = await startManagedClamd();
  clamav = createClamavScanner({
    ...clamd.clientOptions("socket"),
    signaturesVersion: clamd.signaturesVersion,
  });
  unpacking = createUnpackingScanner(clamav);
  await unpacking.setup?.();
});
afterAll(async () => {
  await unpacking?.close?.();
  await clamd?.[Symbol.asyncDispose]();
  scratch?.remove();
});

interface BlindSpot {
  label: string;
  filename: string;
  make: () => Buffer;
  /** Where EICAR is found, after `<filename>!/`. */
  detectedIn: string;
}

const blindSpots: BlindSpot[] = [
  {
    label: "a zip compressed with PPMd",
    filename: "invoice.zip",
    make: () =>
      sevenZipArchive(scratch.path, "ppmd.zip", { "invoice.exe": member }, ["-tzip", "-mm=PPMd"]),
    detectedIn: "invoice.exe",
  },
  {
    label: "a 7z with a BZip2 coder",
    filename: "invoice.7z",
    make: () =>
      sevenZipArchive(scratch.path, "bzip2.7z", { "invoice.exe": member }, ["-t7z", "-m0=BZip2"]),
    detectedIn: "invoice.exe",
  },
  {
    label: "brotli (no magic number: known by its name)",
    filename: "invoice.exe.br",
    make: () => tool("brotli", ["-c"], { input: member }),
    detectedIn: "invoice.exe",
  },
  {
    label: "lzip",
    filename: "invoice.exe.lz",
    make: () => compressed("lzip", member),
    detectedIn: "invoice.exe",
  },
  {
    label: "LZMA-alone",
    filename: "invoice.exe.lzma",
    make: () => compressed("lzma", member),
    detectedIn: "invoice.exe",
  },
  {
    label: "a gzip with a zip appended (unzip extracts it)",
    filename: "invoice.gz",
    make: () =>
      Buffer.concat([
        tool("gzip", ["-c", "-n"], { input: Buffer.from("Dear customer,\n".repeat(40)) }),
        toolZip("zip", { "invoice.exe": member }),
      ]),
    detectedIn: "(trailing data)", // a zip: clamd decodes it, given alone
  },
  {
    label: "a zip entry missing from the central directory (7-Zip extracts it)",
    filename: "invoice.zip",
    make: () =>
      handZip([
        { name: "readme.txt", content: "Dear customer,\n".repeat(40) },
        { name: "invoice.exe", content: member, listed: false },
      ]),
    detectedIn: "invoice.exe (not in the central directory)",
  },
];

describe("what clamd answers OK for, unpacked for it", () => {
  it.each(blindSpots)("$label: clamd alone benign, unpacked malicious", async (spot) => {
    const bytes = spot.make();
    expect(bytes.includes(Buffer.from(eicarTestString))).toBe(false);
    const alone = await clamav.scan(artifactFromBytes(bytes, { filename: spot.filename }));
    expect(alone.verdict).toBe("benign");
    const result = await unpacking.scan(artifactFromBytes(bytes, { filename: spot.filename }));
    expect(result).toMatchObject({
      verdict: "malicious",
      metadata: { malware_family: expect.stringMatching(/eicar/i) },
    });
    const report = result.metadata.unpack as UnpackReport;
    expect(report.detected_in).toContain(`${spot.filename}!/${spot.detectedIn}`);
  });

  it("keeps the same containers benign when the member is harmless", async () => {
    const harmless = Buffer.from("filler line of a harmless member\n".repeat(200));
    const ppmd = sevenZipArchive(scratch.path, "harmless.zip", { "a.txt": harmless }, [
      "-tzip",
      "-mm=PPMd",
    ]);
    const result = await unpacking.scan(artifactFromBytes(ppmd, { filename: "a.zip" }));
    expect(result.verdict).toBe("benign");
    expect((result.metadata.unpack as UnpackReport).members).toBeGreaterThanOrEqual(1);
  });
});
