export {
  type ConformanceCheck,
  ConformanceError,
  type ConformanceGroup,
  type ConformanceOptions,
  type ConformanceSubject,
  conformanceChecks,
  enabledChecks,
} from "./conformance-checks.js";
export { describeScanner } from "./describe-scanner.js";
export {
  cleanArtifact,
  cleanBytes,
  eicarArtifact,
  largeStreamArtifact,
  stalledStreamArtifact,
} from "./test-artifacts.js";
