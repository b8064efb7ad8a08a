// `@engine/core/conformance`: the conformance checks and test artifacts without vitest, for
// tools that run them themselves (`microengine check`) and for CommonJS callers.
export { conformanceChecks, enabledChecks } from "./conformance-checks.js";
export { type ConformanceRunner, registerConformance } from "./conformance-runner.js";
export {
  type ConformanceCheck,
  ConformanceError,
  type ConformanceGroup,
  type ConformanceOptions,
  type ConformanceSubject,
  capabilitiesOf,
  type ResolvedCapabilities,
  type ScannerCapabilities,
} from "./conformance-support.js";
export {
  cleanArtifact,
  cleanBytes,
  eicarArtifact,
  largeStreamArtifact,
  stalledStreamArtifact,
} from "./test-artifacts.js";
