import { readdir, realpath, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { includeDirective, scanLine } from "./include-directives.js";
import type { LineSegment } from "./line-segment.js";
import type { RuleDiagnostic } from "./rule-diagnostics.js";
import { readRuleFile } from "./rule-file-reader.js";
import {
  defaultRuleSourceLimits,
  limitOptionName,
  type RuleSourceLimits,
} from "./rule-source-limits.js";

/** A unit of compilation: one rule file (its includes inlined) in its own namespace. */
export interface RuleSource {
  /** Namespace of its rules: the path relative to `rulesDir` without extension, or a label. */
  namespace: string;
  /** The root file's path, or `<rules>` labels for inline sources. */
  origin: string;
  /** The source with `include` directives replaced by the included files. */
  source: string;
  /** How lines of `source` map back to files. */
  segments: LineSegment[];
}

/** Where rules come from (see the scanner options). */
export interface RuleInput {
  rulesDir?: string | undefined;
  ruleFiles?: string[] | undefined;
  rules?: string | string[] | Record<string, string> | undefined;
  /** Bounds on reading the files and inlining their includes; unset ones keep their default. */
  limits?: Partial<RuleSourceLimits> | undefined;
}

const ruleFileExtension = /\.ya?ra?$/i;

async function walk(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries.sort((left, right) => (left.name < right.name ? -1 : 1))) {
    const path = join(directory, entry.name);
    // (a loop, not a spread: a spread of 150,000 names overflows the stack)
    if (entry.isDirectory()) for (const file of await walk(path)) files.push(file);
    // A symlink may point at anything (a FIFO, a device): readRuleFile reads regular files only.
    else if ((entry.isFile() || entry.isSymbolicLink()) && ruleFileExtension.test(entry.name))
      files.push(path);
  }
  return files;
}

function namespaceFor(path: string, root: string | undefined): string {
  const name = root ? relative(root, path) : basename(path);
  return name.split(sep).join("/").replace(ruleFileExtension, "");
}

/** `limits` over the defaults; an `undefined` entry keeps its default. */
function withDefaults(limits: Partial<RuleSourceLimits> | undefined): RuleSourceLimits {
  const merged = { ...defaultRuleSourceLimits };
  for (const [name, value] of Object.entries(limits ?? {}) as Array<
    [keyof RuleSourceLimits, number | undefined]
  >) {
    if (value !== undefined && name in merged) merged[name] = value;
  }
  return merged;
}

/** Bytes read so far in one load, against `maxTotalBytes`. */
interface LoadBudget {
  limits: RuleSourceLimits;
  bytesRead: number;
}

/** One root file's expansion: what is inlined, the include chain, and its bounds. */
interface Expansion {
  budget: LoadBudget;
  /** Real paths (symlinks resolved) of the files inlined so far, the root's included. */
  seen: Set<string>;
  /** The include chain down to the file being expanded: its real path and the path shown. */
  stack: Array<{ real: string; shown: string }>;
  /** Bytes of the root and what it includes so far, against `maxSourceBytes`. */
  sourceBytes: number;
  lines: string[];
  segments: LineSegment[];
}

/** Which byte bound is the tightest for the next file of `expansion`, and what is left of it. */
function tightestByteBound(expansion: Expansion): {
  limit: "maxFileBytes" | "maxSourceBytes" | "maxTotalBytes";
  remaining: number;
} {
  const { limits, bytesRead } = expansion.budget;
  const bounds = [
    { limit: "maxFileBytes" as const, remaining: limits.maxFileBytes },
    { limit: "maxSourceBytes" as const, remaining: limits.maxSourceBytes - expansion.sourceBytes },
    { limit: "maxTotalBytes" as const, remaining: limits.maxTotalBytes - bytesRead },
  ];
  return bounds.reduce((tightest, bound) =>
    bound.remaining < tightest.remaining ? bound : tightest,
  );
}

/**
 * Reads one file of an expansion (a root or an include) within the byte bounds, and counts
 * what it read. Returns the text, or the code and message of a diagnostic.
 */
async function readWithinBounds(
  path: string,
  expansion: Expansion,
  isRoot: boolean,
): Promise<{ text: string } | { code: string; message: string }> {
  const bound = tightestByteBound(expansion);
  const read = await readRuleFile(path, Math.max(0, bound.remaining));
  // What was read counts, also when it was too much: a bound once hit stays hit.
  expansion.sourceBytes += read.bytes;
  expansion.budget.bytesRead += read.bytes;
  if (read.ok) return { text: read.text };
  if (read.reason === "too-large") {
    const { limits } = expansion.budget;
    const option = limitOptionName(bound.limit);
    if (bound.limit === "maxFileBytes") {
      return {
        code: isRoot ? "file-too-large" : "include-too-large",
        message: `it ${read.message}, over the ${limits.maxFileBytes}-byte limit of one rule file (${option}); split the file, or raise ${option}`,
      };
    }
    if (bound.limit === "maxSourceBytes") {
      const root = expansion.stack[0]?.shown ?? path;
      return {
        code: "rule-source-too-large",
        message: `${root} with its includes would be over ${limits.maxSourceBytes} bytes (${option}); split it into several root files, or raise ${option}`,
      };
    }
    return {
      code: "rules-too-large",
      message: `the rule files read in this load would be over ${limits.maxTotalBytes} bytes (${option}); load fewer files, or raise ${option}`,
    };
  }
  if (read.reason === "not-regular-file") {
    return {
      code: isRoot ? "not-regular-file" : "include-not-regular-file",
      message: `it ${read.message}; rule files must be regular files (a FIFO or device is never read), point it at a rule file`,
    };
  }
  return {
    code: isRoot ? "unreadable" : "include-not-found",
    message: read.message,
  };
}

/**
 * Inlines `include "file"` directives (paths relative to the including file), recursively,
 * within the bounds of `expansion.budget.limits`. Files are known by their real path, so a
 * file reached through symlinks (even to directories) is inlined once; a file included twice
 * into one root is inlined once; a cycle, a missing or unreadable file, anything over a bound,
 * and an `include` that is not a whole-line directive (an engine would read it itself) are an
 * error of the root file.
 */
async function expand(
  origin: string,
  text: string,
  baseDirectory: string,
  expansion: Expansion,
): Promise<RuleDiagnostic | undefined> {
  const { limits } = expansion.budget;
  const lines = text.split(/\r?\n/);
  let segmentStart = 0;
  const flush = (end: number): void => {
    if (end > segmentStart) {
      expansion.segments.push({
        combinedStartLine: expansion.lines.length + 1,
        lineCount: end - segmentStart,
        origin,
        originStartLine: segmentStart + 1,
      });
      // (a loop, not a spread: a spread of a 250,000-line file overflows the stack)
      for (let line = segmentStart; line < end; line += 1) expansion.lines.push(lines[line] ?? "");
    }
  };
  let inBlockComment = false;
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index] ?? "";
    const match = inBlockComment ? null : includeDirective.exec(line);
    if (!match) {
      const scan = scanLine(line, inBlockComment);
      if (scan.includeColumn !== undefined) {
        return {
          path: origin,
          line: index + 1,
          column: scan.includeColumn,
          severity: "error",
          code: "include-not-on-own-line",
          message:
            'this "include" is not a line of its own (include "file", nothing else but a // comment): @engine/yara inlines only such lines, with its limits, and never lets an engine read a file itself; move it to a line of its own',
        };
      }
      inBlockComment = scan.inBlockComment;
      continue;
    }
    const name = match[1] ?? "";
    flush(index);
    segmentStart = index + 1;
    const target = isAbsolute(name) ? name : resolve(baseDirectory, name);
    const position = { path: origin, line: index + 1, column: 1, severity: "error" as const };
    let real: string;
    try {
      real = await realpath(target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return {
        ...position,
        code: "include-not-found",
        message: `cannot include "${name}" (${target}): ${code === "ENOENT" ? "not found" : String(error)}`,
      };
    }
    if (expansion.stack.some((entry) => entry.real === real)) {
      return {
        ...position,
        code: "include-cycle",
        message: `include cycle: ${[...expansion.stack.map((entry) => entry.shown), target].join(" -> ")}`,
      };
    }
    if (expansion.seen.has(real)) continue; // already inlined into this root: YARA would report duplicates
    if (expansion.stack.length > limits.maxIncludeDepth) {
      const option = limitOptionName("maxIncludeDepth");
      return {
        ...position,
        code: "include-too-deep",
        message: `cannot include "${name}" (${target}): includes nest deeper than ${limits.maxIncludeDepth} levels (${option}) in ${[...expansion.stack.map((entry) => entry.shown), target].join(" -> ")}; flatten the includes, or raise ${option}`,
      };
    }
    if (expansion.seen.size > limits.maxIncludedFiles) {
      const option = limitOptionName("maxIncludedFiles");
      return {
        ...position,
        code: "too-many-includes",
        message: `cannot include "${name}" (${target}): ${expansion.stack[0]?.shown} would inline more than ${limits.maxIncludedFiles} files (${option}); split it into several root files, or raise ${option}`,
      };
    }
    const read = await readWithinBounds(real, expansion, false);
    if (!("text" in read)) {
      return {
        ...position,
        code: read.code,
        message: `cannot include "${name}" (${target}): ${read.message}`,
      };
    }
    expansion.seen.add(real);
    expansion.stack.push({ real, shown: target });
    const failure = await expand(target, read.text, dirname(target), expansion);
    expansion.stack.pop();
    if (failure) return failure;
  }
  flush(lines.length);
  return undefined;
}

/** A root's source: its text with the includes inlined, or the diagnostic that stopped it. */
async function sourceFrom(
  namespace: string,
  origin: string,
  real: string,
  text: string,
  baseDirectory: string,
  expansion: Expansion,
): Promise<RuleSource | RuleDiagnostic> {
  expansion.seen.add(real);
  expansion.stack.push({ real, shown: origin });
  const failure = await expand(origin, text, baseDirectory, expansion);
  if (failure) return failure;
  return { namespace, origin, source: expansion.lines.join("\n"), segments: expansion.segments };
}

/** True for a file made of nothing but include directives, comments and blank lines. */
function isIndexFile(text: string): boolean {
  let includes = 0;
  for (const line of text.replace(/\/\*[\s\S]*?\*\//g, "").split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("//")) continue;
    if (!includeDirective.test(line)) return false;
    includes += 1;
  }
  return includes > 0;
}

/**
 * Reads the rule sources: every `.yar`/`.yara` file under `rulesDir` (recursively, sorted),
 * each file of `ruleFiles`, and inline `rules`. Each becomes its own namespace, so equal rule
 * names in two files do not collide. Index files under `rulesDir` (only `include` lines,
 * like Yara-Rules' `*_index.yar`) are skipped, since the files they include are loaded on their
 * own. Only regular files are read (never blocking on a FIFO or device), within `input.limits`
 * (see {@link RuleSourceLimits}); anything wrong with a file becomes a diagnostic, not an
 * exception.
 */
export async function loadRuleSources(
  input: RuleInput,
): Promise<{ sources: RuleSource[]; diagnostics: RuleDiagnostic[] }> {
  const sources: RuleSource[] = [];
  const diagnostics: RuleDiagnostic[] = [];
  const add = (result: RuleSource | RuleDiagnostic): void => {
    if ("source" in result) sources.push(result);
    else diagnostics.push(result);
  };
  const budget: LoadBudget = {
    limits: withDefaults(input.limits),
    bytesRead: 0,
  };
  const newExpansion = (): Expansion => ({
    budget,
    seen: new Set(),
    stack: [],
    sourceBytes: 0,
    lines: [],
    segments: [],
  });
  const files: Array<{ path: string; root?: string }> = [];
  if (input.rulesDir !== undefined) {
    const root = resolve(input.rulesDir);
    for (const path of await walk(root)) files.push({ path, root });
  }
  for (const path of input.ruleFiles ?? []) files.push({ path: resolve(path) });

  const used = new Map<string, number>();
  const unique = (namespace: string): string => {
    const count = (used.get(namespace) ?? 0) + 1;
    used.set(namespace, count);
    return count === 1 ? namespace : `${namespace}#${count}`;
  };
  for (const { path, root } of files) {
    const expansion = newExpansion();
    expansion.stack.push({ real: path, shown: path }); // names the root in messages
    const read = await readWithinBounds(path, expansion, true);
    expansion.stack.pop();
    if (!("text" in read)) {
      diagnostics.push({
        path,
        severity: "error",
        code: read.code,
        message: `cannot read ${path}: ${read.message}`,
      });
      continue;
    }
    if (root !== undefined && isIndexFile(read.text)) continue;
    const real = await realpath(path).catch(() => path);
    add(
      await sourceFrom(
        unique(namespaceFor(path, root)),
        path,
        real,
        read.text,
        dirname(path),
        expansion,
      ),
    );
  }

  const inline = input.rules;
  const entries: Array<[string, string]> =
    inline === undefined
      ? []
      : typeof inline === "string"
        ? [["inline", inline]]
        : Array.isArray(inline)
          ? inline.map((text, index) => [`inline_${index}`, text])
          : Object.entries(inline);
  for (const [label, text] of entries) {
    const origin = `<rules:${label}>`;
    const expansion = newExpansion();
    const bytes = Buffer.byteLength(text);
    expansion.sourceBytes = bytes;
    budget.bytesRead += bytes;
    if (budget.bytesRead > budget.limits.maxTotalBytes) {
      const option = limitOptionName("maxTotalBytes");
      diagnostics.push({
        path: origin,
        severity: "error",
        code: "rules-too-large",
        message: `the rules of this load would be over ${budget.limits.maxTotalBytes} bytes (${option}); load fewer rules, or raise ${option}`,
      });
      continue;
    }
    add(await sourceFrom(unique(label), origin, origin, text, process.cwd(), expansion));
  }
  return { sources, diagnostics };
}

/** True when `path` exists and is a directory. */
export async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
