import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eicarBytes } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { microengine } from "../../harness/cli.js";

// Issue 22, item 5: a file over 100 MiB was unknown whatever the flags. --max-file-size (or
// ARTIFACT_MAX_BYTES, the one variable) raises every backend's limit: the managed clamd's
// MaxFileSize/MaxScanSize/StreamMaxLength, the clamav client's maxStreamBytes, YARA's. EICAR
// at the end of a 101 MiB file is only found when both backends read the whole file.
let directory: string;
let big: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-scan-size-"));
  big = join(directory, "big.bin");
  const eicar = eicarBytes();
  const size = 101 * 1024 * 1024;
  const file = await open(big, "w");
  try {
    // Sparse up to the end, where EICAR is: past clamd's default MaxFileSize (100M).
    await file.write(eicar, 0, eicar.length, size - eicar.length);
  } finally {
    await file.close();
  }
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("microengine scan --max-file-size", () => {
  it("by default, a 101 MiB file is unknown, not scanned, and says why (exit 2)", async () => {
    const { code, stdout } = await microengine(["scan", big]);
    expect(code).toBe(2);
    expect(stdout).toContain(
      `UNKNOWN ${big}: SKIPPED:TOO_LARGE; the file (105906176 bytes) is over --max-file-size / ARTIFACT_MAX_BYTES (104857600 bytes): not scanned`,
    );
    expect(stdout).toMatch(/unknown +1\n/);
  });

  it("--max-file-size 128M: the managed clamd and YARA both scan it whole and find EICAR at its end (exit 1)", async () => {
    const { code, stdout } = await microengine(["scan", "--max-file-size", "128M", big]);
    expect(stdout).toContain(
      `MALICIOUS ${big}: EICAR-Test-File (yara), Engine.Test.Eicar-Body.UNOFFICIAL (clamav)`,
    );
    expect(code).toBe(1);
  });

  it("ARTIFACT_MAX_BYTES does the same; the flag wins over it", async () => {
    const raised = await microengine(["scan", "--backends", "clamav", big], {
      ARTIFACT_MAX_BYTES: "134217728",
    });
    expect(raised.stdout).toContain(`MALICIOUS ${big}: Engine.Test.Eicar-Body.UNOFFICIAL (clamav)`);
    const lowered = await microengine(
      ["scan", "--backends", "clamav", "--max-file-size", "1M", big],
      {
        ARTIFACT_MAX_BYTES: "134217728",
      },
    );
    expect(lowered.code).toBe(2);
    expect(lowered.stdout).toMatch(
      /UNKNOWN .*over --max-file-size \/ ARTIFACT_MAX_BYTES \(1048576 bytes\)/,
    );
  });

  it("refuses a size that is not one, naming the variable", async () => {
    const { code, stderr } = await microengine(["scan", "--max-file-size", "huge", big]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/ARTIFACT_MAX_BYTES: a size in bytes, or with a unit K, M, G or T/);
  });
});
