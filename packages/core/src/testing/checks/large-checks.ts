import { assertVerdict, type ConformanceCheck, withScanner } from "../conformance-support.js";
import { largeStreamArtifact } from "../test-artifacts.js";

/** The `large` group: a large stream is benign, and malicious with EICAR at its very end. */
export const largeChecks: readonly ConformanceCheck[] = [
  {
    group: "large",
    name: "scans a large streamed artifact (clean, and with EICAR at its very end)",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const size = subject.options.largeArtifactBytes ?? 32 * 1024 * 1024;
        assertVerdict(
          await scanner.scan(largeStreamArtifact(size)),
          "benign",
          `a clean ${size}-byte stream`,
        );
        const detects =
          subject.options.detectsEicarInLargeArtifacts ?? subject.options.detectsEicar !== false;
        if (detects) {
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
