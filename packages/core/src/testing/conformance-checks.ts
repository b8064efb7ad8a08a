import { abortChecks } from "./checks/abort-checks.js";
import { cleanChecks } from "./checks/clean-checks.js";
import { concurrencyChecks } from "./checks/concurrency-checks.js";
import { deadlineChecks } from "./checks/deadline-checks.js";
import { eicarChecks } from "./checks/eicar-checks.js";
import { emptyChecks } from "./checks/empty-checks.js";
import { largeChecks } from "./checks/large-checks.js";
import { lifecycleChecks } from "./checks/lifecycle-checks.js";
import { schemaChecks } from "./checks/schema-checks.js";
import { unreachableChecks } from "./checks/unreachable-checks.js";
import type { ConformanceCheck, ConformanceOptions } from "./conformance-support.js";

/** Every check of the conformance suite, in order: one file per group in `checks/`. */
export const conformanceChecks: readonly ConformanceCheck[] = [
  ...eicarChecks,
  ...cleanChecks,
  ...schemaChecks,
  ...abortChecks,
  ...deadlineChecks,
  ...lifecycleChecks,
  ...concurrencyChecks,
  ...unreachableChecks,
  ...emptyChecks,
  ...largeChecks,
];

/**
 * The checks that apply with these options: groups switched off are left out, `eicar` when
 * the backend does not detect it, `unreachable` without `createUnreachableScanner`.
 */
export function enabledChecks(
  options: ConformanceOptions,
): { check: ConformanceCheck; enabled: boolean }[] {
  return conformanceChecks.map((check) => {
    let enabled = options.groups?.[check.group] !== false;
    if (check.group === "eicar" && options.detectsEicar === false) enabled = false;
    if (check.group === "unreachable" && !options.createUnreachableScanner) enabled = false;
    return { check, enabled };
  });
}
