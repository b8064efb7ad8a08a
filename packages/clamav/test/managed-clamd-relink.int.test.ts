import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactFromBytes } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClamavScanner } from "../src/index.js";
import { startManagedClamd } from "../src/managed.js";

// freshclam replaces and renames database files (daily.cvd -> daily.cld): relinkDatabases()
// plus reload() makes the managed clamd load what the directory holds now.
const first = Buffer.from("engine relink sample one\n");
const second = Buffer.from("engine relink sample two\n");
const hashSignature = (bytes: Buffer, name: string) =>
  `${createHash("md5").update(bytes).digest("hex")}:${bytes.length}:${name}\n`;

let databases: string;
beforeAll(async () => {
  databases = await mkdtemp(join(tmpdir(), "engine-relink-db-"));
  await writeFile(join(databases, "first.hdb"), hashSignature(first, "Engine.Relink.One"));
});
afterAll(async () => {
  await rm(databases, { recursive: true, force: true });
});

describe("a managed clamd's databases after an update", () => {
  it("loads renamed and new files on relinkDatabases + reload, and drops removed ones", async () => {
    await using clamd = await startManagedClamd({ databaseDirectories: [databases] });
    await using scanner = createClamavScanner({ ...clamd.clientOptions(), versionMaxAgeMs: 1 });
    const familyOf = async (bytes: Buffer) =>
      (await scanner.scan(artifactFromBytes(bytes))).metadata.malware_family;
    expect(await familyOf(first)).toMatch(/Engine\.Relink\.One/);
    expect(await familyOf(second)).toBe("");
    const before = clamd.signaturesVersion;

    await rm(join(databases, "first.hdb"));
    await writeFile(join(databases, "second.hdb"), hashSignature(second, "Engine.Relink.Two"));
    await clamd.relinkDatabases();
    await scanner.reload();
    expect(clamd.signaturesVersion).not.toBe(before);
    // clamd reloads in the background after RELOAD: wait for the new database to answer.
    const deadline = Date.now() + 20_000;
    while ((await familyOf(second)) === "" && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await familyOf(second)).toMatch(/Engine\.Relink\.Two/);
    expect(await familyOf(first)).toBe("");
  }, 60_000);
});
