import { type ConformanceCheck, expectScanWorks, withScanner } from "../conformance-support.js";

/** The `lifecycle` group: `setup`, `close` and `asyncDispose` repeated, interleaved and concurrent. */
export const lifecycleChecks: readonly ConformanceCheck[] = [
  {
    group: "lifecycle",
    name: "survives setup and close called repeatedly, interleaved and concurrently",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        await scanner.setup?.();
        await scanner.setup?.();
        await expectScanWorks(scanner, "setup twice");
        await scanner.close?.();
        await scanner.close?.();
        await scanner.setup?.();
        await expectScanWorks(scanner, "close twice then setup");
        await scanner.close?.();
        await expectScanWorks(scanner, "close then a scan without setup");
        await Promise.all([
          scanner.setup?.(),
          scanner.close?.(),
          scanner.setup?.(),
          scanner.setup?.(),
        ]);
        await expectScanWorks(scanner, "concurrent setup and close");
        await scanner[Symbol.asyncDispose]();
        await scanner[Symbol.asyncDispose]();
        await expectScanWorks(scanner, "asyncDispose twice");
      }),
  },
];
