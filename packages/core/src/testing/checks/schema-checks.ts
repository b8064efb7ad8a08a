import {
  assertValid,
  type ConformanceCheck,
  capabilitiesOf,
  fail,
  withScanner,
} from "../conformance-support.js";
import { cleanArtifact, eicarArtifact } from "../test-artifacts.js";

/** The `schema` group: results match `scanResultSchema`. */
export const schemaChecks: readonly ConformanceCheck[] = [
  {
    group: "schema",
    name: "returns results that match scanResultSchema",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        assertValid(await scanner.scan(cleanArtifact("schema")), "a clean scan");
        if (capabilitiesOf(subject.options).detectsEicar)
          assertValid(await scanner.scan(eicarArtifact()), "an EICAR scan");
        if (typeof scanner.name !== "string" || scanner.name.length === 0)
          fail("the scanner has no name");
      }),
  },
];
