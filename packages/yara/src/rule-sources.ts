import { readdir, readFile, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { LineSegment } from "./line-segment.js";
import type { RuleDiagnostic } from "./rule-diagnostics.js";

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
}

const includeDirective = /^\s*include\s+"((?:[^"\\]|\\.)*)"\s*(?:\/\/.*)?$/;
const ruleFileExtension = /\.ya?ra?$/i;

async function walk(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries.sort((left, right) => (left.name < right.name ? -1 : 1))) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(path)));
    else if ((entry.isFile() || entry.isSymbolicLink()) && ruleFileExtension.test(entry.name))
      files.push(path);
  }
  return files;
}

function namespaceFor(path: string, root: string | undefined): string {
  const name = root ? relative(root, path) : basename(path);
  return name.split(sep).join("/").replace(ruleFileExtension, "");
}

/**
 * Inlines `include "file"` directives (paths relative to the including file), recursively.
 * A file included twice into one root is inlined once; a cycle or a missing file is an error
 * of the root file.
 */
async function expand(
  origin: string,
  text: string,
  baseDirectory: string,
  state: { seen: Set<string>; stack: string[]; lines: string[]; segments: LineSegment[] },
): Promise<RuleDiagnostic | undefined> {
  const lines = text.split(/\r?\n/);
  let segmentStart = 0;
  const flush = (end: number): void => {
    if (end > segmentStart) {
      state.segments.push({
        combinedStartLine: state.lines.length + 1,
        lineCount: end - segmentStart,
        origin,
        originStartLine: segmentStart + 1,
      });
      state.lines.push(...lines.slice(segmentStart, end));
    }
  };
  for (let index = 0; index < lines.length; index += 1) {
    const match = includeDirective.exec(lines[index] ?? "");
    if (!match?.[1]) continue;
    flush(index);
    segmentStart = index + 1;
    const target = isAbsolute(match[1]) ? match[1] : resolve(baseDirectory, match[1]);
    const position = { path: origin, line: index + 1, column: 1, severity: "error" as const };
    if (state.stack.includes(target)) {
      return {
        ...position,
        code: "include-cycle",
        message: `include cycle: ${[...state.stack, target].join(" -> ")}`,
      };
    }
    if (state.seen.has(target)) continue; // already inlined into this root: YARA would report duplicates
    let included: string;
    try {
      included = await readFile(target, "utf8");
    } catch (error) {
      const reason =
        (error as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : String(error);
      return {
        ...position,
        code: "include-not-found",
        message: `cannot include "${match[1]}" (${target}): ${reason}`,
      };
    }
    state.seen.add(target);
    state.stack.push(target);
    const failure = await expand(target, included, dirname(target), state);
    state.stack.pop();
    if (failure) return failure;
  }
  flush(lines.length);
  return undefined;
}

async function sourceFrom(
  namespace: string,
  origin: string,
  text: string,
  baseDirectory: string,
): Promise<RuleSource | RuleDiagnostic> {
  const state = {
    seen: new Set<string>([origin]),
    stack: [origin],
    lines: [] as string[],
    segments: [] as LineSegment[],
  };
  const failure = await expand(origin, text, baseDirectory, state);
  if (failure) return failure;
  return { namespace, origin, source: state.lines.join("\n"), segments: state.segments };
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
 * own; anything wrong with a file becomes a diagnostic, not an exception.
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
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      diagnostics.push({
        path,
        severity: "error",
        code: "unreadable",
        message: `cannot read ${path}: ${String(error)}`,
      });
      continue;
    }
    if (root !== undefined && isIndexFile(text)) continue;
    add(await sourceFrom(unique(namespaceFor(path, root)), path, text, dirname(path)));
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
  for (const [label, text] of entries)
    add(await sourceFrom(unique(label), `<rules:${label}>`, text, process.cwd()));
  return { sources, diagnostics };
}

/** True when `path` exists and is a directory. */
export async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
