import { describe, it } from "vitest";
import type { Scanner } from "../scanner.js";
import { registerConformance } from "./conformance-runner.js";
import type { ConformanceOptions } from "./conformance-support.js";

/**
 * Registers the conformance suite for one backend as a vitest `describe` block: the vitest
 * form of `registerConformance` (from `@engine/core/conformance`, for any other framework).
 * Each check is one test; checks the scanner's declared `capabilities` rule out show as
 * skipped, with the reason in their title.
 *
 * @example
 * // clamav-scanner.int.test.ts
 * describeScanner("clamav over TCP", () => createClamavScanner({ host, port }), {
 *   capabilities: {
 *     createUnreachableScanner: () => createClamavScanner({ host: "127.0.0.1", port: 1 }),
 *   },
 * });
 *
 * @param name title of the describe block
 * @param createScanner builds a fresh scanner for each check (start shared daemons in `beforeAll`)
 * @param options the scanner's capabilities, and how strict the timings are
 */
export function describeScanner(
  name: string,
  createScanner: () => Scanner | Promise<Scanner>,
  options: ConformanceOptions = {},
): void {
  registerConformance({ describe, it }, name, createScanner, options);
}
