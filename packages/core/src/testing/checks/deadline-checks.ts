import { ScanTimeoutError } from "../../errors/scan-timeout-error.js";
import {
  type ConformanceCheck,
  expectScanWorks,
  expectStopped,
  stopWithin,
  withScanner,
} from "../conformance-support.js";
import { cleanArtifact, stalledStreamArtifact } from "../test-artifacts.js";

/** The `deadline` group: a deadline ends a scan promptly with `ScanTimeoutError`, and the scanner works afterwards. */
export const deadlineChecks: readonly ConformanceCheck[] = [
  {
    group: "deadline",
    name: "rejects promptly with ScanTimeoutError when the deadline has passed",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const options = { deadline: Date.now() - 1 };
        await expectStopped(
          scanner,
          cleanArtifact(),
          options,
          ScanTimeoutError,
          stopWithin(subject),
          "a past deadline",
        );
      }),
  },
  {
    group: "deadline",
    name: "stops a running scan with ScanTimeoutError at its deadline, and still works afterwards",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const options = { deadline: Date.now() + 300 };
        await expectStopped(
          scanner,
          stalledStreamArtifact(),
          options,
          ScanTimeoutError,
          300 + stopWithin(subject),
          "a scan past its deadline",
        );
        await expectScanWorks(scanner, "a timed-out scan");
      }),
  },
];
