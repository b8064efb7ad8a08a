// `@engine/core/testing`: everything in `@engine/core/conformance`, plus `describeScanner`,
// which registers the checks as vitest tests (ESM only, as vitest is).
export * from "./conformance.js";
export { describeScanner } from "./describe-scanner.js";
