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
import {
  type ConformanceCheck,
  type ConformanceOptions,
  capabilitiesOf,
  minimumLargeArtifactBytes,
} from "./conformance-support.js";

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
 * Each check and whether it runs with these options, and when not, why: the scanner's
 * declared capabilities leave out `eicar` when it does not detect EICAR, `unreachable`
 * without `createUnreachableScanner`, `large` when `maxArtifactBytes` is under 1 MiB; and
 * `groups` switches groups off for the run.
 */
export function enabledChecks(
  options: ConformanceOptions,
): { check: ConformanceCheck; enabled: boolean; skipReason?: string }[] {
  const capabilities = capabilitiesOf(options);
  const skipReason = (check: ConformanceCheck): string | undefined => {
    if (options.groups?.[check.group] === false) return `group ${check.group} switched off`;
    if (check.group === "eicar" && !capabilities.detectsEicar)
      return "the scanner does not declare detectsEicar";
    if (check.group === "unreachable" && !capabilities.createUnreachableScanner)
      return "the scanner declares no createUnreachableScanner";
    if (check.group === "large" && capabilities.maxArtifactBytes < minimumLargeArtifactBytes)
      return `the scanner's maxArtifactBytes is under ${minimumLargeArtifactBytes} bytes`;
    return undefined;
  };
  return conformanceChecks.map((check) => {
    const reason = skipReason(check);
    return reason === undefined
      ? { check, enabled: true }
      : { check, enabled: false, skipReason: reason };
  });
}
