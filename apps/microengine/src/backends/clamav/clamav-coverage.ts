import { readdirSync } from "node:fs";
import type { ClamavScanner, ClamdVersion } from "@engine/clamav";
import type { SignatureCoverage } from "../../protocol/coverage.js";
import { programInstalled } from "./installed-programs.js";

/** The start of the banner's warning when ClamAV has no official database; the cause follows. */
export const clamavTestSignaturesWarning = "ClamAV detects EICAR and test samples only";

/**
 * An official database file as freshclam writes it: `main` or `daily`, signed (`.cvd`) or
 * updated in place (`.cld`, `.cud`). `bytecode.cvd` alone, custom `.ndb`/`.hdb` files and the
 * shipped `engine-test.*` signatures are not a database that sees real malware.
 */
const officialDatabaseFile = /^(main|daily)\.(cvd|cld|cud)$/;

/** The official database files in `directory` (none when it cannot be read). */
export function officialDatabaseFiles(directory: string): string[] {
  try {
    return readdirSync(directory).filter((name) => officialDatabaseFile.test(name));
  } catch {
    return [];
  }
}

/** Where Debian's and a source build's `freshclam` are, PATH or not. */
const freshclamPlaces = ["/usr/bin/freshclam", "/usr/local/bin/freshclam"];

/** True when the `freshclam` binary is installed (the usual `places`, then PATH). */
export function freshclamInstalled(
  searchPath = process.env.PATH ?? "",
  places: readonly string[] = freshclamPlaces,
): boolean {
  return programInstalled("freshclam", places, searchPath);
}

/** How old clamd's official database is, in hours, from its VERSION date (undefined: no date). */
export function databaseAgeHours(version: ClamdVersion, now = Date.now()): number | undefined {
  const date = version.databaseDate ? Date.parse(version.databaseDate) : Number.NaN;
  return Number.isFinite(date) ? Math.max(0, (now - date) / 3_600_000) : undefined;
}

/** Where ClamAV's signatures come from, for {@link clamavDatabaseWarning}. */
export type ClamavDatabaseSource =
  /** A clamd the engine starts over `databaseDirectory`, linked from `systemDirectory`. */
  | { managed: { databaseDirectory: string; systemDirectory: string } }
  /** The operator's clamd, as the banner names it. */
  | { configured: string };

/**
 * The banner's warning about ClamAV's database, naming its cause, or undefined when it is
 * official and fresh. Managed clamd: no main/daily file linked, because freshclam is not
 * installed, or because it is and `/var/lib/clamav` holds none yet. The operator's clamd: its
 * VERSION names no database. Either: the database is older than `maxAgeHours`
 * (CLAMAV_MAX_DATABASE_AGE_HOURS, the age at which `/readyz` fails too).
 */
export function clamavDatabaseWarning(
  version: ClamdVersion,
  source: ClamavDatabaseSource,
  maxAgeHours: number,
  freshclam: () => boolean = freshclamInstalled,
): string | undefined {
  if ("managed" in source) {
    const { databaseDirectory, systemDirectory } = source.managed;
    if (officialDatabaseFiles(databaseDirectory).length === 0)
      return freshclam()
        ? `${clamavTestSignaturesWarning}: ${systemDirectory} holds no database files (main/daily .cvd/.cld) although freshclam is installed: run freshclam (or start the clamav-freshclam service), then reload the engine (SIGHUP) or restart it`
        : `${clamavTestSignaturesWarning}: freshclam is not installed, so ${systemDirectory} has no official database: apt-get install clamav-freshclam, or point CLAMD_* at a clamd with official databases`;
  } else if (!version.databaseVersion)
    return `${clamavTestSignaturesWarning}: ${source.configured} reports no official database (its VERSION names none): run freshclam where that clamd runs`;
  const age = databaseAgeHours(version);
  if (age !== undefined && age > maxAgeHours)
    return `ClamAV's database is stale: ${Math.round(age)} hours old (${version.databaseDate}), older than CLAMAV_MAX_DATABASE_AGE_HOURS (${maxAgeHours}): ${freshclam() ? "is freshclam (the clamav-freshclam service) running? run freshclam" : "freshclam is not installed (apt-get install clamav-freshclam)"}`;
  return undefined;
}

/** ClamAV's coverage now, refreshed at start, on each `/readyz` probe and after each reload. */
export interface ClamavCoverage {
  current(): SignatureCoverage;
  refresh(): Promise<SignatureCoverage>;
}

/**
 * ClamAV's coverage: a managed clamd has real signatures when its database directory holds a
 * main or daily file (what it loaded); the operator's clamd when its VERSION names an
 * official database. Until clamd answers: test signatures (nothing real is seen).
 */
export async function clamavCoverage(
  clamav: Pick<ClamavScanner, "version">,
  managedDirectory: string | undefined,
): Promise<ClamavCoverage> {
  let value: SignatureCoverage = "test-signatures";
  const refresh = async (): Promise<SignatureCoverage> => {
    try {
      const real = managedDirectory
        ? officialDatabaseFiles(managedDirectory).length > 0
        : (await clamav.version()).databaseVersion !== undefined;
      value = real ? "signatures" : "test-signatures";
    } catch {
      // clamd away: the last known coverage stands.
    }
    return value;
  };
  await refresh();
  return { current: () => value, refresh };
}
