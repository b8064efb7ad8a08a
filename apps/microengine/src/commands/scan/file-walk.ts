import { type BigIntStats, lstatSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { errorMessage } from "../../operations/error-message.js";
import type { ExcludeTest } from "./exclude-patterns.js";
import { printablePath } from "./scan-output.js";

// The walk is synchronous: it runs in its own worker thread (see walk-thread.ts), never on the
// event loop, where a directory on a slow mount would hold everything. Synchronous calls there
// cost a fifth of what the same walk cost in promises on the event loop, each stat a trip to
// the thread pool and back (measured on a copy of /usr/share/doc: 0.42 s of CPU against 0.08 s).

/**
 * Why a walk skipped an entry: not a regular file (a FIFO, socket or device: never opened, as a
 * read could block), a link back to a directory being walked (a cycle), a second path to a
 * directory already walked elsewhere (a revisit), or `--exclude`.
 */
export type SkipCause = "not-a-file" | "cycle" | "revisit" | "excluded";

/** One entry of a walk: a file to scan, an entry that could not be read, or one that was skipped. */
export type WalkEntry =
  | { kind: "file"; path: string; size: number }
  /** Could not be read (missing, dangling link, link to itself, permission): it was not scanned. */
  | { kind: "problem"; path: string; problem: string }
  /** Nothing to scan there, or nothing to scan again: see {@link SkipCause}. */
  | { kind: "skipped"; path: string; reason: string; cause: SkipCause };

function reasonOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "ELOOP":
      return "symbolic link loop";
    case "ENAMETOOLONG":
      return "path too long";
    default:
      return code ?? errorMessage(error);
  }
}

function kindOf(info: BigIntStats): string {
  if (info.isFIFO()) return "a FIFO";
  if (info.isSocket()) return "a socket";
  if (info.isCharacterDevice() || info.isBlockDevice()) return "a device";
  return "not a regular file";
}

/**
 * The information of `path`, following a symbolic link; or the problem for its entry when it
 * cannot be read or its link cannot be followed. In bigint: inode numbers can be 64 bits
 * (overlayfs with xino, CephFS, NFS), past what a number holds exactly.
 */
function followedStats(path: string): BigIntStats | { problem: string } {
  let link: BigIntStats;
  try {
    link = lstatSync(path, { bigint: true });
  } catch (error) {
    return { problem: `cannot read: ${reasonOf(error)}` };
  }
  if (!link.isSymbolicLink()) return link;
  try {
    return statSync(path, { bigint: true });
  } catch (error) {
    const reason = reasonOf(error);
    return {
      problem:
        reason === "no such file or directory"
          ? "dangling symbolic link (its target does not exist)"
          : `cannot follow symbolic link: ${reason}`,
    };
  }
}

/**
 * The paths in a directory, in name order, or the problem listing it. A name that is not
 * UTF-8 comes as a problem entry: paths travel as strings, and it cannot be opened by its
 * decoded form.
 */
function* directoryPaths(path: string): Generator<{ kind: "path"; path: string } | WalkEntry> {
  let names: Buffer[];
  try {
    names = readdirSync(path, { encoding: "buffer" });
  } catch (error) {
    yield { kind: "problem", path, problem: `cannot list directory: ${reasonOf(error)}` };
    return;
  }
  for (const raw of names.sort(Buffer.compare)) {
    const name = raw.toString("utf8");
    if (!Buffer.from(name, "utf8").equals(raw))
      yield {
        kind: "problem",
        path: join(path, name),
        problem: "the file name is not valid UTF-8: not scanned (rename it)",
      };
    else yield { kind: "path", path: join(path, name) };
  }
}

/**
 * The identity of a directory: its device and inode, exact (from bigint stats: as numbers, two
 * inodes that differ only past 2^53 would be one, and the second directory never walked).
 */
export function directoryKey(info: { dev: bigint; ino: bigint }): string {
  return `${info.dev}:${info.ino}`;
}

/** What {@link walkPaths} keeps while it walks, and what it was asked to leave out. */
interface Walk {
  /** The directories entered, by {@link directoryKey}, with the path each was first entered at. */
  entered: Map<string, string>;
  exclude: ExcludeTest | undefined;
  /** True once the walk should stop (checked between entries). */
  stopped: () => boolean;
}

/** The entries of a directory (`key`, by device and inode) entered at `path`. */
function* directoryEntries(
  walk: Walk,
  path: string,
  at: { root: string; ancestors: ReadonlySet<string>; key: string },
): Generator<WalkEntry> {
  if (at.ancestors.has(at.key)) {
    const reason = "symbolic link cycle (leads back to a directory being walked)";
    yield { kind: "skipped", path, reason, cause: "cycle" };
    return;
  }
  const first = walk.entered.get(at.key);
  if (first !== undefined) {
    // A second path to a directory walked before (not a cycle): its files were scanned there.
    const reason = `already walked at ${printablePath(first)}`;
    yield { kind: "skipped", path, reason, cause: "revisit" };
    return;
  }
  walk.entered.set(at.key, path);
  const inside = { ...at, ancestors: new Set(at.ancestors).add(at.key) };
  for (const entry of directoryPaths(path)) {
    if (walk.stopped()) return;
    if (entry.kind !== "path") yield entry;
    else if (walk.exclude?.(entry.path, at.root))
      yield { kind: "skipped", path: entry.path, reason: "excluded", cause: "excluded" };
    else yield* visit(walk, entry.path, { ...inside, named: false });
  }
}

/** The entries of `path`: itself when it is a file, what it holds when it is a directory. */
function* visit(
  walk: Walk,
  path: string,
  at: { root: string; ancestors: ReadonlySet<string>; named: boolean },
): Generator<WalkEntry> {
  const info = followedStats(path);
  if ("problem" in info) yield { kind: "problem", path, problem: info.problem };
  else if (info.isFile()) yield { kind: "file", path, size: Number(info.size) };
  else if (info.isDirectory())
    yield* directoryEntries(walk, path, { ...at, key: directoryKey(info) });
  // Found in a directory, a FIFO or device is skipped; named on the command line, the user
  // asked for it to be scanned, and it cannot be.
  else if (at.named) yield { kind: "problem", path, problem: `${kindOf(info)}: nothing to scan` };
  else yield { kind: "skipped", path, reason: kindOf(info), cause: "not-a-file" };
}

/**
 * Walks files and directories (recursively, following symbolic links, in name order) and
 * yields every regular file once per path, with its size. It never stops on a bad entry: a
 * missing path, a dangling link, a link to itself or an unreadable directory is yielded as a
 * `problem` for that entry, and the walk goes on. Each directory is entered once (by device
 * and inode): a link back to a directory being walked (Debian's `/usr/bin/X11 -> .`) is a
 * cycle, skipped and yielded as such; a second path to a directory walked before (two links to
 * one directory) is skipped and yielded as a revisit, naming the path it was walked at. Entries
 * `exclude` matches are yielded as skipped and never entered (the paths given are always
 * walked). Stops, between entries, once `stopped()` says so.
 *
 * Synchronous, with blocking file system calls: run it in a worker thread
 * ({@link import("./walk-thread.js").walkPaths} does), never on the event loop.
 */
export function* walkPathsSync(
  paths: readonly string[],
  options: { exclude?: ExcludeTest | undefined; stopped?: () => boolean } = {},
): Generator<WalkEntry> {
  const stopped = options.stopped ?? (() => false);
  const walk: Walk = { entered: new Map(), exclude: options.exclude, stopped };
  for (const path of paths) {
    if (stopped()) return;
    const root = resolve(path);
    yield* visit(walk, root, { root, ancestors: new Set(), named: true });
  }
}
