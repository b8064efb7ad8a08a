import { basename, relative } from "node:path";
import picomatch from "picomatch";

/** Tells whether an entry found under `root` (a path named on the command line) is excluded. */
export type ExcludeTest = (path: string, root: string) => boolean;

/**
 * The test of `scan --exclude` patterns (picomatch globs: `*` and `?` within a name, `**`
 * across directories, `[abc]`, `{a,b}`; dot files match like any other). A pattern without a
 * `/` is matched against the entry's name at any depth (`node_modules`, `*.iso`); one that
 * starts with `/` against its absolute path (`/usr/share/**`); any other against its path
 * relative to the command-line path it was found under (`sub/*.log`). Undefined without
 * patterns.
 */
export function excludeTest(patterns: readonly string[]): ExcludeTest | undefined {
  if (patterns.length === 0) return undefined;
  const matcher = (chosen: string[]) =>
    chosen.length > 0 ? picomatch(chosen, { dot: true }) : () => false;
  const byName = matcher(patterns.filter((pattern) => !pattern.includes("/")));
  const byAbsolutePath = matcher(patterns.filter((pattern) => pattern.startsWith("/")));
  const byRelativePath = matcher(
    patterns.filter((pattern) => pattern.includes("/") && !pattern.startsWith("/")),
  );
  return (path, root) => {
    const inside = relative(root, path);
    return byName(basename(path)) || byAbsolutePath(path) || byRelativePath(inside);
  };
}
