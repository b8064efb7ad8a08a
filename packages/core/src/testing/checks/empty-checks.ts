import { artifactFromBytes, artifactFromStream } from "../../artifact.js";
import { assertVerdict, type ConformanceCheck, withScanner } from "../conformance-support.js";

/** The `empty` group: a 0-byte artifact is benign, in memory and as a stream. */
export const emptyChecks: readonly ConformanceCheck[] = [
  {
    group: "empty",
    name: "answers benign for a 0-byte artifact, in memory and as a stream",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        assertVerdict(
          await scanner.scan(artifactFromBytes(new Uint8Array(0))),
          "benign",
          "0 bytes in memory",
        );
        assertVerdict(
          await scanner.scan(artifactFromStream([].values())),
          "benign",
          "an empty stream",
        );
      }),
  },
];
