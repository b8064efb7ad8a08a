/**
 * Bounds on reading rule files and inlining their `include`s, per load (setup or reload) of
 * the rules. Anything over a bound is a `RuleDiagnostic` of the root file it belongs to,
 * naming the bound; the other files still load.
 *
 * The defaults leave room for real public rule sets: YARA-Forge's full set is about 10-20 MB
 * in one file, signature-base's largest file about 1 MB, Yara-Rules' `index.yar` includes 480
 * files.
 */
export interface RuleSourceLimits {
  /**
   * Levels of `include` below a root file (the root's own includes are level 1). Default 16,
   * libyara's own limit (`YR_MAX_INCLUDE_DEPTH`).
   */
  maxIncludeDepth: number;
  /**
   * Files inlined into one root file, the root not counted; a file included twice (by any
   * path, symlinks resolved) counts once. Default 1,024.
   */
  maxIncludedFiles: number;
  /** Bytes of one rule file, root or included. Default 32 MiB (33,554,432 bytes). */
  maxFileBytes: number;
  /**
   * Bytes of one root file together with everything it includes (one namespace). Default
   * 64 MiB (67,108,864 bytes).
   */
  maxSourceBytes: number;
  /**
   * Bytes read in one load, every root file and include together (inline `rules` count too).
   * Default 256 MiB (268,435,456 bytes).
   */
  maxTotalBytes: number;
}

/** The default {@link RuleSourceLimits}. */
export const defaultRuleSourceLimits: Readonly<RuleSourceLimits> = Object.freeze({
  maxIncludeDepth: 16,
  maxIncludedFiles: 1024,
  maxFileBytes: 32 * 1024 * 1024,
  maxSourceBytes: 64 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
});

/**
 * Largest value accepted for the byte limits of one file and one root: 512 MiB, about the
 * longest string V8 makes (a rule source is one string).
 */
export const maxRuleSourceStringBytes = 512 * 1024 * 1024;

/** The option's name for each limit, for diagnostics that say what to raise. */
export function limitOptionName(limit: keyof RuleSourceLimits): string {
  return `ruleSourceLimits.${limit}`;
}
