/**
 * A whole-line `include "path"` directive (an optional `//` comment may follow): the only
 * form of `include` this package accepts, and inlines through its bounded reader.
 */
export const includeDirective = /^\s*include\s+"((?:[^"\\]|\\.)*)"\s*(?:\/\/.*)?$/;

/** What {@link scanLine} found on one line of YARA source. */
export interface LineScan {
  /** True when the line ends inside a block comment (the next line starts in it). */
  inBlockComment: boolean;
  /**
   * Column (1-based) of an `include` keyword in code (not in a comment, string or regular
   * expression), when there is one.
   */
  includeColumn: number | undefined;
}

const identifierStart = /[A-Za-z_]/;
const identifierPart = /[A-Za-z0-9_]/;

/**
 * Finds an `include` keyword in code on one line of YARA source, the way libyara's and
 * YARA-X's lexers tokenise it: comments (`//`, `/* *\/`, which may span lines), text strings
 * (`"..."`) and regular expressions (`/.../`, YARA divides with `\`) are skipped, and pattern
 * identifiers (`$include`, `#include`, `@include`, `!include`) are not the keyword. Both
 * engines would process such an `include` themselves (libyara anywhere, even inside a rule;
 * YARA-X between rules, also across lines), so one that is not a whole-line directive must be
 * refused, never handed to an engine.
 * @param line one line, without its line break (YARA strings and regular expressions end at one)
 * @param inBlockComment whether the line starts inside a block comment
 */
export function scanLine(line: string, inBlockComment: boolean): LineScan {
  let index = 0;
  let comment = inBlockComment;
  while (index < line.length) {
    if (comment) {
      const end = line.indexOf("*/", index);
      if (end < 0) return { inBlockComment: true, includeColumn: undefined };
      comment = false;
      index = end + 2;
      continue;
    }
    const character = line[index] as string;
    const next = line[index + 1];
    if (character === "/" && next === "/") break;
    if (character === "/" && next === "*") {
      comment = true;
      index += 2;
    } else if (character === '"' || character === "/") {
      // A text string or a regular expression: up to the same unescaped delimiter.
      index += 1;
      while (index < line.length && line[index] !== character) {
        index += line[index] === "\\" ? 2 : 1;
      }
      index += 1;
    } else if ("$#@!".includes(character) || identifierStart.test(character)) {
      const start = index;
      index += 1;
      while (index < line.length && identifierPart.test(line[index] as string)) index += 1;
      if (line.slice(start, index) === "include") {
        return { inBlockComment: false, includeColumn: start + 1 };
      }
    } else if (/[0-9]/.test(character)) {
      // A number ends at its digits (a name may follow at once, as in flex's longest match).
      while (index < line.length && /[0-9]/.test(line[index] as string)) index += 1;
    } else {
      index += 1;
    }
  }
  return { inBlockComment: comment, includeColumn: undefined };
}
