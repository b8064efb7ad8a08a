import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { artifactFromBytes, eicarBytes } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClamavScanner, checkClamdAlerts, createClamavScanner } from "../src/index.js";
import { type ManagedClamd, startManagedClamd } from "../src/managed.js";
import { clamdAlertsOff, nestedZip, zipArchive } from "../src/testing.js";

const run = promisify(execFile);
const text = (line: string) => Buffer.from(`${line}\n`.repeat(40));

let directory: string;
let clamd: ManagedClamd;
let scanner: ClamavScanner;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-archives-"));
  clamd = await startManagedClamd({ tcp: false });
  scanner = createClamavScanner(clamd.clientOptions());
});
afterAll(async () => {
  await scanner?.close?.();
  await clamd?.[Symbol.asyncDispose]();
  await rm(directory, { recursive: true, force: true });
});

/** A password zip made by Debian's `zip -P`, as an attacker would make it. */
async function zipWithPassword(name: string, data: Buffer, password: string): Promise<Buffer> {
  await writeFile(join(directory, name), data);
  const archive = join(directory, `${name}.zip`);
  await run("zip", ["-q", "-j", "-P", password, archive, join(directory, name)]);
  return readFile(archive);
}

describe("what clamd could not look inside is unknown, never benign (managed clamd)", () => {
  it("answers an encrypted zip of EICAR unknown with SKIPPED:ENCRYPTED, from zip -P and from our writer", async () => {
    for (const archive of [
      await zipWithPassword("eicar.com", eicarBytes(), "infected"),
      zipArchive([{ name: "eicar.com", data: eicarBytes() }], { password: "infected" }),
    ]) {
      const result = await scanner.scan(artifactFromBytes(archive));
      expect(result.verdict).toBe("unknown");
      expect(result.confidence).toBe(0);
      expect(result.metadata.comments?.[0]).toBe("SKIPPED:ENCRYPTED");
      expect(result.metadata.comments?.[1]).toMatch(/^clamd: Heuristics\.Encrypted\./);
    }
  });

  it("answers EICAR nested 22 zips deep unknown with SKIPPED:LIMITS", async () => {
    const result = await scanner.scan(artifactFromBytes(nestedZip("eicar.com", eicarBytes(), 22)));
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments).toEqual([
      "SKIPPED:LIMITS",
      "clamd: Heuristics.Limits.Exceeded.MaxRecursion",
    ]);
  });

  it("keeps honest archives benign and EICAR in a plain zip malicious", async () => {
    const plain = zipArchive([
      { name: "a.txt", data: text("hello") },
      { name: "b.txt", data: text("world") },
    ]);
    expect((await scanner.scan(artifactFromBytes(plain))).verdict).toBe("benign");
    const threeDeep = nestedZip("notes.txt", text("nothing to see"), 3);
    expect((await scanner.scan(artifactFromBytes(threeDeep))).verdict).toBe("benign");
    const encryptedText = await zipWithPassword("notes.txt", text("private"), "secret");
    expect((await scanner.scan(artifactFromBytes(encryptedText))).verdict).toBe("unknown");
    const eicarZip = zipArchive([{ name: "eicar.com", data: eicarBytes() }]);
    const detected = await scanner.scan(artifactFromBytes(eicarZip));
    expect(detected.verdict).toBe("malicious");
    expect(detected.metadata.malware_family).toMatch(/Eicar/i);
  });

  it("checkClamdAlerts passes against the managed clamd", async () => {
    const probes = await checkClamdAlerts(scanner.client);
    expect(probes.map((probe) => [probe.probe, probe.passed])).toEqual([
      ["encrypted-archive", true],
      ["nested-archive", true],
    ]);
    expect(probes[0]?.answer).toMatch(/^Heuristics\.Encrypted\.Zip FOUND$/);
    expect(probes[1]?.answer).toMatch(/^Heuristics\.Limits\.Exceeded\.MaxRecursion FOUND$/);
  });
});

describe("checkClamdAlerts against a clamd without the alert settings", () => {
  it("fails each probe on OK and names the clamd.conf setting to add", async () => {
    await using bare = await startManagedClamd({
      tcp: false,
      config: clamdAlertsOff,
    });
    const client = createClamavScanner(bare.clientOptions());
    try {
      // This is the attack the settings stop: the encrypted zip reads as clean.
      const archive = zipArchive([{ name: "eicar.com", data: eicarBytes() }], { password: "x" });
      expect((await client.scan(artifactFromBytes(archive))).verdict).toBe("benign");
      const probes = await checkClamdAlerts(client.client);
      expect(probes).toEqual([
        expect.objectContaining({
          probe: "encrypted-archive",
          passed: false,
          answer: "OK",
          fix: expect.stringMatching(/AlertEncryptedArchive yes/),
        }),
        expect.objectContaining({
          probe: "nested-archive",
          passed: false,
          answer: "OK",
          fix: expect.stringMatching(/AlertExceedsMax yes/),
        }),
      ]);
    } finally {
      await client.close?.();
    }
  });
});
