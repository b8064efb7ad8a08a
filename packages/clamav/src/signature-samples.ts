import { eicarBytes } from "@engine/core";

// Markers are assembled at run time so this source file does not match its own signatures.
const ndbMarker = ["ENGINE-TEST", "NDB-MARKER-7F3A"].join("-");
const ldbPartOne = ["ENGINE-TEST", "LDB-PART-ONE"].join("-");
const ldbPartTwo = ["ENGINE-TEST", "LDB-PART-TWO"].join("-");

/** Files that trigger each signature of the shipped database, and near misses that must not. */
export interface SignatureSamples {
  /** The EICAR test file: `Eicar-Test-Signature` (hdb, by md5) or `Engine.Test.Eicar-Body` (ndb). */
  eicar: Buffer;
  /** EICAR inside other text: only the ndb body signature `Engine.Test.Eicar-Body` can match. */
  eicarInside: Buffer;
  /** The exact file of `Engine.Test.Hdb` (md5 and size). */
  hdb: Buffer;
  /** A file with the `Engine.Test.Ndb` body marker. */
  ndb: Buffer;
  /** A file with both parts of the logical signature `Engine.Test.Ldb`. */
  ldb: Buffer;
  /** A file with one part only: clean for `Engine.Test.Ldb`. */
  ldbPartial: Buffer;
  /** The hdb sample with one byte more: a different md5, clean. */
  hdbNearMiss: Buffer;
}

/** The signature each sample triggers, as clamd reports it (with `.UNOFFICIAL`). */
export const sampleSignatures = {
  hdb: "Engine.Test.Hdb.UNOFFICIAL",
  ndb: "Engine.Test.Ndb.UNOFFICIAL",
  ldb: "Engine.Test.Ldb.UNOFFICIAL",
  eicarInside: "Engine.Test.Eicar-Body.UNOFFICIAL",
} as const;

/** Fresh copies of the sample files for the shipped signature database. */
export function signatureSamples(): SignatureSamples {
  const hdb = Buffer.from(
    "engine clamav signature sample: matched by md5 in engine-test.hdb\n",
    "latin1",
  );
  return {
    eicar: eicarBytes(),
    eicarInside: Buffer.concat([
      Buffer.from("a text file that quotes the test string: "),
      eicarBytes(),
      Buffer.from("\n"),
    ]),
    hdb,
    ndb: Buffer.from(`header line\nsome text before ${ndbMarker} and some after\n`, "latin1"),
    ldb: Buffer.from(`first ${ldbPartOne}\nthen, later, ${ldbPartTwo}\n`, "latin1"),
    ldbPartial: Buffer.from(`only ${ldbPartOne} here\n`, "latin1"),
    hdbNearMiss: Buffer.concat([hdb, Buffer.from(" ")]),
  };
}
