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
 * test per check; checks that need what the scanner does not declare in `capabilities` (EICAR
 * detection, `createUnreachableScanner`, `maxArtifactBytes` of at least 1 MiB) and groups
 * switched off are registered as skipped, their title saying why.
 *
 * @example
 * import { describe, it } from "node:test";
 * registerConformance({ describe, it }, "word", () => createWordScanner(), {
 *   capabilities: { maxArtifactBytes: 8 * 1024 * 1024 },
 * });
 *
 * @param runner the framework's `describe` and `it` (with `it.skip`)
 * @param name title of the describe block
 * @param createScanner builds a fresh scanner for each check
 * @param options the scanner's capabilities, and how strict the timings are
 */
export function registerConformance(
  runner: ConformanceRunner,
  name: string,
  createScanner: () => Scanner | Promise<Scanner>,
  options: ConformanceOptions = {},
): void {
  runner.describe(`conformance: ${name}`, () => {
    for (const { check, enabled, skipReason } of enabledChecks(options)) {
      const register = enabled ? runner.it : runner.it.skip;
      register(
        `[${check.group}] ${check.name}${skipReason ? ` (skipped: ${skipReason})` : ""}`,
        () => check.run({ createScanner, options }),
        options.checkTimeoutMs ?? 60_000,
      );
    }
  });
}
