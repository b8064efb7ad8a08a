import { ScanAbortedError } from "../../errors/scan-aborted-error.js";
import {
  type ConformanceCheck,
  expectScanWorks,
  expectStopped,
  stopWithin,
  withScanner,
} from "../conformance-support.js";
import { cleanArtifact, stalledStreamArtifact } from "../test-artifacts.js";

/** The `abort` group: an aborted signal ends a scan promptly with `ScanAbortedError`, and the scanner works afterwards. */
export const abortChecks: readonly ConformanceCheck[] = [
  {
    group: "abort",
    name: "rejects promptly with ScanAbortedError when the signal is already aborted",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const controller = new AbortController();
        controller.abort();
        const options = { signal: controller.signal };
        await expectStopped(
          scanner,
          cleanArtifact(),
          options,
          ScanAbortedError,
          stopWithin(subject),
          "a pre-aborted scan",
        );
      }),
  },
  {
    group: "abort",
    name: "stops a running scan with ScanAbortedError when the signal fires, and still works afterwards",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), 200);
        try {
          await expectStopped(
            scanner,
            stalledStreamArtifact(),
            { signal: controller.signal },
            ScanAbortedError,
            200 + stopWithin(subject),
            "a scan aborted while running",
          );
        } finally {
          clearTimeout(timer);
        }
        await expectScanWorks(scanner, "an aborted scan");
      }),
  },
];
