import { artifactFromBytes, eicarBytes, type ScanOptions } from "@engine/core";
import type { ClamdService } from "./clamd-pool.js";
import { nestedZip, zipArchive } from "./zip-archive.js";

/**
 * The `clamd.conf` settings without which clamd answers `OK` for what it could not look
 * inside: encrypted archives and documents, and archives past its limits (`MaxRecursion`,
 * `MaxFileSize`, `MaxScanSize`, `MaxFiles`). The managed clamd sets them all; a clamd you run
 * yourself needs them too.
 */
export const requiredClamdAlertSettings = {
  AlertEncrypted: "yes",
  AlertEncryptedArchive: "yes",
  AlertEncryptedDoc: "yes",
  AlertExceedsMax: "yes",
} as const;

/**
 * The alert settings switched off, as a clamd without them behaves (for tests that show the
 * attack, and for `checkClamdAlerts` to catch): pass as `startManagedClamd({ config })`.
 */
export const clamdAlertsOff: Readonly<Record<keyof typeof requiredClamdAlertSettings, boolean>> = {
  AlertEncrypted: false,
  AlertEncryptedArchive: false,
  AlertEncryptedDoc: false,
  AlertExceedsMax: false,
};

/** Nesting depth of the probe: past clamd's default `MaxRecursion` (17) with room to spare. */
const probeNestingDepth = 40;

/** One probe of {@link checkClamdAlerts}. */
export interface ClamdAlertProbe {
  /** `encrypted-archive` (a password zip of EICAR) or `nested-archive` (EICAR 40 zips deep). */
  probe: "encrypted-archive" | "nested-archive";
  /** True when clamd raised the alert (`Heuristics.Encrypted.*`, `Heuristics.Limits.Exceeded.*`). */
  passed: boolean;
  /** clamd's answer, e.g. `Heuristics.Encrypted.Zip FOUND`, `OK`, or the error. */
  answer: string;
  /** What to set in clamd.conf when the probe failed. */
  fix: string;
}

/**
 * Checks that a clamd reports what it could not inspect instead of answering `OK`: it scans a
 * password-protected zip of EICAR and EICAR nested 40 zips deep. A probe passes only when clamd
 * raises the alert (`Heuristics.Encrypted.*`, `Heuristics.Limits.Exceeded.*`); it fails when
 * clamd says `OK` (the artifact would pass as clean), finds something else, or cannot scan it,
 * and its `fix` names the clamd.conf setting. Use it on a clamd you do not manage (the engine
 * runs it at start and in `microengine check`). For a `ClamdPool`, probe each of its `clients`.
 */
export async function checkClamdAlerts(
  client: ClamdService,
  options: ScanOptions = {},
): Promise<ClamdAlertProbe[]> {
  const eicar = eicarBytes();
  const probes = [
    {
      probe: "encrypted-archive" as const,
      bytes: zipArchive([{ name: "eicar.com", data: eicar }], { password: "infected" }),
      fix: "set AlertEncrypted yes, AlertEncryptedArchive yes and AlertEncryptedDoc yes in clamd.conf",
    },
    {
      probe: "nested-archive" as const,
      bytes: nestedZip("eicar.com", eicar, probeNestingDepth),
      fix: "set AlertExceedsMax yes in clamd.conf (clamd then reports Heuristics.Limits.Exceeded.* past MaxRecursion, MaxFileSize, MaxScanSize and MaxFiles)",
    },
  ];
  const results: ClamdAlertProbe[] = [];
  for (const { probe, bytes, fix } of probes) {
    try {
      const { reply } = await client.scan(
        artifactFromBytes(bytes, { filename: `${probe}.zip` }),
        options,
      );
      const answer =
        reply.kind === "found"
          ? `${reply.signature} FOUND`
          : reply.kind === "ok"
            ? "OK"
            : `${reply.message} ERROR`;
      // Only the alert itself passes: finding EICAR 40 zips deep (a high MaxRecursion) says
      // nothing about files past MaxFileSize, and a decrypted zip nothing about other passwords.
      const passed =
        reply.kind === "found" &&
        (probe === "encrypted-archive" ? reply.encrypted : reply.limitsExceeded);
      results.push({ probe, passed, answer, fix });
    } catch (error) {
      results.push({
        probe,
        passed: false,
        answer: `could not scan the probe: ${(error as Error)?.message ?? String(error)}`,
        fix,
      });
    }
  }
  return results;
}
