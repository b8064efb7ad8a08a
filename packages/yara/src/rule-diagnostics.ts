import type { LineSegment } from "./line-segment.js";

/** A problem with one rule file: it did not compile (error) or compiled with a warning. */
export interface RuleDiagnostic {
  /** The file the problem is in (an included file when the problem is there). */
  path: string;
  /** Line in that file (1-based), when known. */
  line?: number;
  /** Column (1-based), when known. */
  column?: number;
  /**
   * The compiler's code, e.g. `E009` (YARA-X) or `libyara`, or ours. Reading a root file:
   * `unreadable`, `not-regular-file` (a FIFO, device, socket or directory, never read),
   * `file-too-large`. Its includes: `include-not-found`, `include-cycle`,
   * `include-not-regular-file`, `include-too-large`, `include-too-deep`, `too-many-includes`,
   * `include-not-on-own-line` (an `include` sharing its line, which an engine would read
   * itself). Either: `rule-source-too-large` (a root with its includes), `rules-too-large`
   * (the whole load). The size and count codes name the `RuleSourceLimits` entry to raise.
   */
  code?: string;
  /** The message. */
  message: string;
  /** `error`: the file was skipped (or the load failed); `warning`: it compiled. */
  severity: "error" | "warning";
}

/**
 * Parses a YARA-X compiler message (`error[E025]: unknown pattern ...\n --> line:3:13 ...`)
 * and maps its line back through the include segments to the file it came from.
 */
export function diagnosticFromCompiler(
  text: string,
  fallbackPath: string,
  segments: readonly LineSegment[],
  severity: RuleDiagnostic["severity"] = "error",
): RuleDiagnostic {
  const header = /^(?:error|warning)\[([^\]]+)\]:\s*(.*)$/m.exec(text);
  const location = /-->\s*line:(\d+):(\d+)/.exec(text);
  const message = (header?.[2] ?? text.split("\n")[0] ?? text).trim();
  return diagnosticAt(
    { message, severity, ...(header?.[1] ? { code: header[1] } : {}) },
    fallbackPath,
    segments,
    location?.[1] ? Number(location[1]) : undefined,
    location?.[2] ? Number(location[2]) : undefined,
  );
}

/**
 * A diagnostic at a line of a combined (include-inlined) source, mapped back through the include
 * segments to the file and line it came from.
 */
export function diagnosticAt(
  base: Pick<RuleDiagnostic, "message" | "severity" | "code">,
  fallbackPath: string,
  segments: readonly LineSegment[],
  combinedLine: number | undefined,
  column?: number,
): RuleDiagnostic {
  const diagnostic: RuleDiagnostic = { path: fallbackPath, ...base };
  if (diagnostic.code === undefined) delete diagnostic.code;
  if (column !== undefined) diagnostic.column = column;
  if (combinedLine !== undefined && combinedLine > 0) {
    const segment = segments.find(
      (candidate) =>
        combinedLine >= candidate.combinedStartLine &&
        combinedLine < candidate.combinedStartLine + candidate.lineCount,
    );
    if (segment) {
      diagnostic.path = segment.origin;
      diagnostic.line = segment.originStartLine + (combinedLine - segment.combinedStartLine);
    } else {
      diagnostic.line = combinedLine;
    }
  }
  return diagnostic;
}

/** One line for logs: `path:line:column: error[E025] message`. */
export function formatDiagnostic(diagnostic: RuleDiagnostic): string {
  const where = [diagnostic.path, diagnostic.line, diagnostic.column]
    .filter((part) => part !== undefined)
    .join(":");
  return `${where}: ${diagnostic.severity}${diagnostic.code ? `[${diagnostic.code}]` : ""} ${diagnostic.message}`;
}
