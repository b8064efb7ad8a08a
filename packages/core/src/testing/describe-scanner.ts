import { describe, it } from "vitest";
import type { Scanner } from "../scanner.js";
import { type ConformanceOptions, enabledChecks } from "./conformance-checks.js";

/**
 * Registers the conformance suite for one backend as a vitest `describe` block. Each check is
 * one test; switched-off groups show as skipped.
 *
 * @example
 * // clamav-scanner.int.test.ts
 * describeScanner("clamav over TCP", () => createClamavScanner({ host, port }), {
 *   createUnreachableScanner: () => createClamavScanner({ host: "127.0.0.1", port: 1 }),
 * });
 *
 * @param name title of the describe block
 * @param createScanner builds a fresh scanner for each check (start shared daemons in `beforeAll`)
 * @param options which groups run and how strict the timings are
 */
export function describeScanner(
  name: string,
  createScanner: () => Scanner | Promise<Scanner>,
  options: ConformanceOptions = {},
): void {
  describe(`conformance: ${name}`, () => {
    for (const { check, enabled } of enabledChecks(options)) {
      const test = enabled ? it : it.skip;
      test(
        `[${check.group}] ${check.name}`,
        () => check.run({ createScanner, options }),
        options.checkTimeoutMs ?? 60_000,
      );
    }
  });
}
