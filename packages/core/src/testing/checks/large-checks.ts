import {
  assertVerdict,
  type ConformanceCheck,
  capabilitiesOf,
  largeArtifactSize,
  withScanner,
} from "../conformance-support.js";
import { largeStreamArtifact } from "../test-artifacts.js";

/** The `large` group: a large stream (within `maxArtifactBytes`) is benign, and malicious with EICAR at its very end. */
export const largeChecks: readonly ConformanceCheck[] = [
  {
    group: "large",
    name: "scans a large streamed artifact (clean, and with EICAR at its very end)",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const size = largeArtifactSize(subject.options);
        assertVerdict(
          await scanner.scan(largeStreamArtifact(size)),
          "benign",
          `a clean ${size}-byte stream`,
        );
        if (capabilitiesOf(subject.options).detectsEicarInLargeArtifacts) {
          const artifact = largeStreamArtifact(size, { endWithEicar: true });
          assertVerdict(
            await scanner.scan(artifact),
            "malicious",
            `a ${size}-byte stream ending with EICAR`,
          );
        }
      }),
  },
];
