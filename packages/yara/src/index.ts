export type { LineSegment } from "./line-segment.js";
export {
  type MatchSummary,
  type MatchVerdictOptions,
  summarizeMatch,
  verdictFromMatches,
} from "./match-verdict.js";
export {
  diagnosticFromCompiler,
  formatDiagnostic,
  type RuleDiagnostic,
} from "./rule-diagnostics.js";
export { defaultRuleSourceLimits, type RuleSourceLimits } from "./rule-source-limits.js";
export {
  loadRuleSources,
  type RuleInput,
  type RuleSource,
} from "./rule-sources.js";
export { yaraPackageVersion } from "./version.js";
export {
  artifactExternals,
  bundledRulesDirectory,
  createYaraScanner,
  type YaraScanner,
  type YaraScannerStatus,
} from "./yara-scanner.js";
export { type YaraScannerOptions, yaraScannerOptionsSchema } from "./yara-scanner-options.js";
export type { PoolStatus } from "./yara-worker-pool.js";
export type { ExternalValue, RawMatch } from "./yara-worker-protocol.js";
