import {
  assertVerdict,
  type ConformanceCheck,
  capabilitiesOf,
  withScanner,
} from "../conformance-support.js";
import { cleanArtifact, eicarArtifact } from "../test-artifacts.js";

/** The `concurrency` group: concurrent scans of different artifacts each get their own answer. */
export const concurrencyChecks: readonly ConformanceCheck[] = [
  {
    group: "concurrency",
    name: "gives each of many concurrent scans its own answer",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const count = subject.options.concurrentScans ?? 8;
        const detects = capabilitiesOf(subject.options).detectsEicar;
        const expected = Array.from({ length: count }, (_, index) =>
          detects && index % 2 === 0 ? ("malicious" as const) : ("benign" as const),
        );
        const results = await Promise.all(
          expected.map((verdict, index) =>
            scanner.scan(
              verdict === "malicious" ? eicarArtifact() : cleanArtifact(`concurrent ${index}`),
            ),
          ),
        );
        results.forEach((result, index) => {
          assertVerdict(result, expected[index] ?? "benign", `concurrent scan ${index}`);
        });
      }),
  },
];
