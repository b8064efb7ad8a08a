import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClamdVersion } from "@engine/clamav";
import { afterEach, describe, expect, it } from "vitest";
import {
  clamavCoverage,
  clamavDatabaseWarning,
  clamavTestSignaturesWarning,
  databaseAgeHours,
  freshclamInstalled,
  officialDatabaseFiles,
} from "../../../src/backends/clamav/clamav-coverage.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A directory holding `names` (empty files). */
async function directoryWith(...names: string[]): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "engine-clamav-coverage-"));
  cleanups.push(() => rm(directory, { recursive: true, force: true }));
  for (const name of names) await writeFile(join(directory, name), "");
  return directory;
}

const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000).toString();
const testOnly: ClamdVersion = { engineVersion: "1.4.3", raw: "ClamAV 1.4.3" };
const official = (hours: number): ClamdVersion => ({
  engineVersion: "1.4.3",
  databaseVersion: "27000",
  databaseDate: hoursAgo(hours),
  raw: "ClamAV 1.4.3/27000/...",
});
const installed = () => true;
const absent = () => false;

describe("ClamAV's official database files", () => {
  it("are main and daily .cvd/.cld/.cud; the shipped test database, bytecode and custom files are not", async () => {
    const shipped = await directoryWith("engine-test.hdb", "engine-test.ldb", "engine-test.ndb");
    expect(officialDatabaseFiles(shipped)).toEqual([]);
    expect(officialDatabaseFiles(await directoryWith("bytecode.cvd", "mine.ndb"))).toEqual([]);
    expect(
      officialDatabaseFiles(await directoryWith("daily.cld", "main.cvd", "engine-test.hdb")).sort(),
    ).toEqual(["daily.cld", "main.cvd"]);
    expect(officialDatabaseFiles(join(shipped, "missing"))).toEqual([]);
  });

  it("finds freshclam on PATH, and says so when it is absent", async () => {
    const bin = await directoryWith();
    await writeFile(join(bin, "freshclam"), "#!/bin/sh\n");
    await chmod(join(bin, "freshclam"), 0o755);
    expect(freshclamInstalled(bin, [])).toBe(true);
    expect(freshclamInstalled(`${await directoryWith()}:${bin}`, [])).toBe(true);
    expect(freshclamInstalled(await directoryWith(), [])).toBe(false);
    expect(freshclamInstalled("", [join(bin, "freshclam")])).toBe(true);
  });
});

describe("the banner's ClamAV warning names the cause", () => {
  const system = "/var/lib/clamav";

  it("managed clamd without database files: freshclam absent, or installed with an empty directory", async () => {
    const managed = {
      managed: {
        databaseDirectory: await directoryWith("engine-test.hdb"),
        systemDirectory: system,
      },
    };
    const withoutFreshclam = clamavDatabaseWarning(testOnly, managed, 72, absent);
    expect(withoutFreshclam).toBe(
      `${clamavTestSignaturesWarning}: freshclam is not installed, so /var/lib/clamav has no official database: apt-get install clamav-freshclam, or point CLAMD_* at a clamd with official databases`,
    );
    const emptyDirectory = clamavDatabaseWarning(testOnly, managed, 72, installed);
    expect(emptyDirectory).toMatch(
      /^ClamAV detects EICAR and test samples only: \/var\/lib\/clamav holds no database files \(main\/daily \.cvd\/\.cld\) although freshclam is installed: run freshclam/,
    );
    expect(emptyDirectory).toMatch(/then reload the engine \(SIGHUP\) or restart it/);
    expect(emptyDirectory).not.toMatch(/install clamav-freshclam/);
  });

  it("a stale database (older than CLAMAV_MAX_DATABASE_AGE_HOURS), managed or the operator's", async () => {
    const managed = {
      managed: {
        databaseDirectory: await directoryWith("daily.cld", "main.cvd"),
        systemDirectory: system,
      },
    };
    expect(clamavDatabaseWarning(official(1), managed, 72, installed)).toBeUndefined();
    expect(clamavDatabaseWarning(official(100), managed, 72, installed)).toMatch(
      /^ClamAV's database is stale: 100 hours old \(.+\), older than CLAMAV_MAX_DATABASE_AGE_HOURS \(72\): is freshclam/,
    );
    expect(
      clamavDatabaseWarning(official(30), { configured: "the clamd at x" }, 24, absent),
    ).toMatch(/older than CLAMAV_MAX_DATABASE_AGE_HOURS \(24\): freshclam is not installed/);
    expect(databaseAgeHours(official(5))).toBeCloseTo(5, 1);
    expect(databaseAgeHours(testOnly)).toBeUndefined();
  });

  it("the operator's clamd whose VERSION names no database", () => {
    expect(clamavDatabaseWarning(testOnly, { configured: "the clamd at /run/c.sock" }, 72)).toBe(
      `${clamavTestSignaturesWarning}: the clamd at /run/c.sock reports no official database (its VERSION names none): run freshclam where that clamd runs`,
    );
  });
});

describe("ClamAV's coverage", () => {
  it("managed clamd: test signatures until a main/daily file is linked in its directory (refreshed)", async () => {
    const directory = await directoryWith("engine-test.hdb");
    const clamav = { version: async () => official(1) };
    const coverage = await clamavCoverage(clamav, directory);
    expect(coverage.current()).toBe("test-signatures");
    await writeFile(join(directory, "daily.cvd"), "");
    expect(coverage.current()).toBe("test-signatures");
    expect(await coverage.refresh()).toBe("signatures");
    expect(coverage.current()).toBe("signatures");
  });

  it("the operator's clamd: from its VERSION; unreachable, the last known stands", async () => {
    let version: Promise<ClamdVersion> = Promise.resolve(testOnly);
    const coverage = await clamavCoverage({ version: () => version }, undefined);
    expect(coverage.current()).toBe("test-signatures");
    version = Promise.resolve(official(1));
    expect(await coverage.refresh()).toBe("signatures");
    version = Promise.reject(new Error("away"));
    expect(await coverage.refresh()).toBe("signatures");
  });
});
