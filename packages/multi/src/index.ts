export { answered, type BackendOutcome, failed } from "./backend-outcome.js";
export { createMultiScanner, type MultiScanner } from "./multi-scanner.js";
export { type MultiScannerOptions, multiScannerOptionsSchema } from "./multi-scanner-options.js";
export { type SharedArtifact, shareArtifact } from "./shared-artifact.js";
export {
  any,
  majority,
  namedPolicies,
  quorum,
  type VerdictPolicy,
  weighted,
} from "./verdict-policy.js";
export { multiPackageVersion } from "./version.js";
