// `@engine/core/conformance`: the conformance checks and test artifacts without vitest, for
// tools that run them themselves (`microengine check`) and for CommonJS callers.
export {
  type ConformanceCheck,
  ConformanceError,
  type ConformanceGroup,
  type ConformanceOptions,
  type ConformanceSubject,
  conformanceChecks,
  enabledChecks,
} from "./conformance-checks.js";
export {
  cleanArtifact,
  cleanBytes,
  eicarArtifact,
  largeStreamArtifact,
  stalledStreamArtifact,
} from "./test-artifacts.js";
