import type { Scanner } from "../scanner.js";
import { enabledChecks } from "./conformance-checks.js";
import type { ConformanceOptions } from "./conformance-support.js";

/** A test framework's `describe` and `it` (vitest, jest, mocha, node:test's `describe`/`it`). */
export interface ConformanceRunner {
  describe(name: string, body: () => void): void;
  it: {
    (name: string, test: () => Promise<void>, timeoutMs?: number): void;
    /** Registers a test that is reported as skipped. */
    skip(name: string, test: () => Promise<void>, timeoutMs?: number): void;
  };
}

/**
 * Registers the conformance suite for one backend with the test framework you pass in: one
 * test per check, switched-off groups and checks that need what the scanner does not declare
 * (`detectsEicar: false`, no `createUnreachableScanner`) registered as skipped.
 *
 * @example
 * import { describe, it } from "node:test";
 * registerConformance({ describe, it }, "word", () => createWordScanner(), { groups: { large: false } });
 *
 * @param runner the framework's `describe` and `it` (with `it.skip`)
 * @param name title of the describe block
 * @param createScanner builds a fresh scanner for each check
 * @param options which groups run and how strict the timings are
 */
export function registerConformance(
  runner: ConformanceRunner,
  name: string,
  createScanner: () => Scanner | Promise<Scanner>,
  options: ConformanceOptions = {},
): void {
  runner.describe(`conformance: ${name}`, () => {
    for (const { check, enabled } of enabledChecks(options)) {
      const register = enabled ? runner.it : runner.it.skip;
      register(
        `[${check.group}] ${check.name}`,
        () => check.run({ createScanner, options }),
        options.checkTimeoutMs ?? 60_000,
      );
    }
  });
}
